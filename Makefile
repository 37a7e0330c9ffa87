# edgecnn — make demo (set up, run the main job), make test (set up, run the tests).
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
# torch and torchvision are pinned here (not in pyproject): these are on local disk;
# any other release downloads gigabytes.
TORCH   := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[export,tflite,dev]' $(TORCH)
	@touch $(STAMP)

demo: install
	$(VENV)/bin/edgecnn export mobilenet --profile raspberrypi4 --out exports/demo --force

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check edgecnn tests benchmarks tools
	$(VENV)/bin/ruff format --check edgecnn tests benchmarks tools

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
