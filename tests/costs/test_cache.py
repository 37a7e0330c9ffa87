"""The op-cost cache: what it answers equals a fresh reading, and a bad entry is never believed."""

from __future__ import annotations

import json
import os

import pytest

from edgecnn.costs import cache
from edgecnn.costs.cache import zoo_costs

CANDIDATES = [
    ("mobilenet_v1", "int8", {"width": 0.5, "resolution": 128}),
    ("mobilenet_v3_small", "fp32", {"resolution": 96}),
    ("efficientnet_b0", "int8", {"resolution": 96}),
]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty cache directory, and no entry in memory."""
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_memory()
    yield tmp_path / "cache"
    cache.clear_memory()


def _path(root, model, dtype, scaling):
    return cache.entry_path(cache.entry_key(model, dtype, scaling), root)


@pytest.mark.parametrize("model, dtype, scaling", CANDIDATES)
def test_cached_costs_equal_fresh_ones(root, model, dtype, scaling):
    fresh = cache.compute(model, dtype, scaling)
    first = zoo_costs(model, dtype, **scaling)  # computed and stored
    assert _path(root, model, dtype, scaling).is_file()
    cache.clear_memory()
    from_disk = zoo_costs(model, dtype, **scaling)
    from_memory = zoo_costs(model, dtype, **scaling)
    for costs, input_size in (first, from_disk, from_memory):
        assert tuple(costs) == fresh[0] and input_size == fresh[1]
    assert all(cost.name for cost in from_disk[0])  # the names survive the round trip


def test_the_key_separates_dtype_and_scaling(root):
    int8, _ = zoo_costs("mobilenet_v1", "int8", width=0.25, resolution=96)
    fp32, _ = zoo_costs("mobilenet_v1", "fp32", width=0.25, resolution=96)
    wider, _ = zoo_costs("mobilenet_v1", "int8", width=0.5, resolution=96)
    assert {c.dtype for c in int8} == {"int8"} and {c.dtype for c in fp32} == {"fp32"}
    assert sum(c.work for c in wider) > sum(c.work for c in int8)
    assert len(list(root.rglob("*.json"))) == 3
    assert cache.entry_key("m", "fp32", {"b": 1, "a": 2}) == cache.entry_key("m", "fp32", {"a": 2, "b": 1})


@pytest.mark.parametrize(
    "corrupt",
    [
        "",
        "{not json",
        '{"key": "another", "input_size": [3, 96, 96], "costs": []}',
        "RIGHT_KEY_BAD_ROW",
        "RIGHT_KEY_NEGATIVE",
        "RIGHT_KEY_BAD_SIZE",
        b"\xff\xfe",
    ],
)
def test_a_corrupt_entry_is_ignored_and_rewritten(root, corrupt):
    model, dtype, scaling = "mobilenet_v1", "int8", {"width": 0.25, "resolution": 96}
    key = cache.entry_key(model, dtype, scaling)
    fresh = cache.compute(model, dtype, scaling)
    good = json.loads(cache.encode(key, fresh))
    if corrupt == "RIGHT_KEY_BAD_ROW":
        corrupt = json.dumps({**good, "costs": [["conv", "warp", 1, 2, 3]]})
    elif corrupt == "RIGHT_KEY_NEGATIVE":
        corrupt = json.dumps({**good, "costs": [["a", "conv", "int8", -1.0, 2.0, 0.0, 1, 1]]})
    elif corrupt == "RIGHT_KEY_BAD_SIZE":
        corrupt = json.dumps({**good, "input_size": [3, 0, "x"]})
    path = cache.entry_path(key, root)
    path.parent.mkdir(parents=True)
    path.write_bytes(corrupt if isinstance(corrupt, bytes) else corrupt.encode())
    costs, input_size = zoo_costs(model, dtype, **scaling)
    assert tuple(costs) == fresh[0] and input_size == fresh[1]
    assert cache.decode(path.read_text(encoding="utf-8"), key) == fresh  # replaced by a good entry
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_an_entry_of_another_key_under_the_name_is_not_believed(root):
    """An entry is read only when its stored key is the one asked for (a name collision, a hand-copied file)."""
    model, dtype, scaling = "mobilenet_v1", "int8", {"width": 0.25, "resolution": 96}
    other = {"width": 1.0, "resolution": 224}
    path = _path(root, model, dtype, scaling)
    path.parent.mkdir(parents=True)
    path.write_text(cache.encode(cache.entry_key(model, dtype, other), cache.compute(model, dtype, other)))
    assert tuple(zoo_costs(model, dtype, **scaling)[0]) == cache.compute(model, dtype, scaling)[0]


def test_the_version_covers_the_sources(monkeypatch):
    """Editing a zoo module changes the version, so old entries are never read."""
    before = cache.cache_version()
    monkeypatch.setattr(cache, "_version", None)
    monkeypatch.setattr(cache, "FORMAT", cache.FORMAT + 1)
    assert cache.cache_version() != before
    sources = [p for pattern in cache._SOURCES for p in cache._PACKAGE.glob(pattern)]
    assert any(p.name == "mobilenet.py" for p in sources) and any(p.name == "torch_op_costs.py" for p in sources)


def test_no_disk_cache_when_disabled_or_unwritable(tmp_path, monkeypatch):
    cache.clear_memory()
    monkeypatch.setenv("EDGECNN_CACHE_DIR", "")
    costs, _ = zoo_costs("mobilenet_v1", "fp32", width=0.25, resolution=96)
    assert costs
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("EDGECNN_CACHE_DIR", str(blocked))
    cache.clear_memory()
    assert zoo_costs("mobilenet_v1", "fp32", width=0.25, resolution=96)[0] == costs
    cache.clear_memory()
    assert os.listdir(tmp_path) == ["file"]
