"""Run the harness on a device over SSH with the system ``ssh``/``scp``: copy, run, collect, clean up.

Every command is an argument list (no local shell). ``ssh`` joins its trailing arguments into one line
for the remote shell, so every remote argument is quoted with :func:`shlex.quote`; the only user string
that reaches the remote side is ``--python``. Host keys are checked (``StrictHostKeyChecking=yes``),
authentication is by key only (``BatchMode=yes``), and connecting and running have timeouts.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgecnn.bench.child import run_child
from edgecnn.errors import BenchError, UsageError, check_file

# [user@]host: a name, an IPv4 address or a bare IPv6 address. Never starts with '-' (an ssh option).
_HOST = re.compile(r"^(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?(?:[A-Za-z0-9_][A-Za-z0-9._-]*|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$")
# What `mktemp -d -t edgecnn-bench.XXXXXXXX` may print: an absolute path of safe characters.
_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]*/edgecnn-bench\.[A-Za-z0-9._-]+$")
MKTEMP = ["mktemp", "-d", "-t", "edgecnn-bench.XXXXXXXX"]

# ssh's own failures (it exits 255) → the user-facing explanation.
_UNREACHABLE = (
    "connection refused",
    "connection timed out",
    "operation timed out",
    "no route to host",
    "network is unreachable",
    "could not resolve hostname",
    "name or service not known",
    "connection closed by",
    "connection reset",
)
_HOST_KEY = ("host key verification failed", "remote host identification has changed", "host key for")
_AUTH = ("permission denied", "too many authentication failures", "no supported authentication methods")


MAX_SECONDS = 7 * 24 * 3600  # a week: longer than any benchmark, and a figure every timer takes


def check_seconds(option: str, value: float) -> None:
    """Fail unless ``value`` is a time a timer can hold: more than 0 s, at most a week (so not NaN or inf)."""
    if not 0 < value <= MAX_SECONDS:
        raise UsageError(f"{option} must be a number of seconds > 0 and ≤ {MAX_SECONDS} (a week), not {value:g}")


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect: ``[user@]host``, port, key, known_hosts, connect timeout in seconds."""

    host: str
    port: int | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _HOST.match(self.host):
            raise UsageError(f"--host must be [USER@]HOST (letters, digits, '.', '-', '_'), not '{self.host}'")
        if self.port is not None and not 0 < self.port < 65536:
            raise UsageError(f"--port must be 1..65535, not {self.port}")
        if self.identity is not None:
            check_file(self.identity, "identity file")
        if self.known_hosts is not None:
            check_file(self.known_hosts, "known_hosts file")
        check_seconds("--connect-timeout", self.connect_timeout)

    @property
    def where(self) -> str:
        """The host as the user named it, with a non-default port."""
        return f"{self.host}:{self.port}" if self.port else self.host

    def options(self) -> list[str]:
        """The ``-o`` options and key shared by ssh and scp (not the port: ssh -p, scp -P)."""
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
        ]  # fmt: skip
        if self.known_hosts is not None:
            options += ["-o", f'UserKnownHostsFile="{Path(self.known_hosts).resolve()}"']
        if self.identity is not None:
            options += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return options

    def ssh_argv(self, remote: list[str]) -> list[str]:
        """``ssh ... HOST 'quoted remote argv'``: the remote shell sees exactly the words of ``remote``."""
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *self.options(), *port, "-T", "-x", "--", self.host, " ".join(shlex.quote(a) for a in remote)]

    def scp_argv(self, sources: list[Path], remote_dir: str, legacy: bool = False) -> list[str]:
        """``scp ... SOURCES HOST:DIR/`` (``-O``: the legacy protocol, for servers without SFTP)."""
        port = ["-P", str(self.port)] if self.port else []
        host = self.host
        if ":" in host.rpartition("@")[2]:  # IPv6: [addr]:path
            user, at, address = host.rpartition("@")
            host = f"{user}{at}[{address}]"
        return ["scp", "-q", *(["-O"] if legacy else []), *self.options(), *port, "--",
                *map(str, sources), f"{host}:{remote_dir}/"]  # fmt: skip


def explain_ssh_failure(target: SshTarget, stderr: str) -> str:
    """One line saying why ssh (exit 255) failed and what fixes it."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    lowered = stderr.lower()
    last = lines[-1] if lines else "no message"
    if any(key in lowered for key in _HOST_KEY):
        known = f" ({target.known_hosts})" if target.known_hosts else ""
        return (
            f"{target.where}: host key not trusted: {last}; verify the device's key and add it to known_hosts{known} "
            f"(e.g. connect once with `ssh {target.host}`)"
        )
    if any(key in lowered for key in _AUTH):
        return (
            f"{target.where}: authentication refused ({last}); edgecnn uses key authentication only: "
            f"run `ssh-copy-id {target.host}` or pass --identity KEY"
        )
    if any(key in lowered for key in _UNREACHABLE) or "timed out" in lowered:
        return f"cannot reach {target.where}: {last}"
    return f"ssh to {target.where} failed: {last}"


class Session:
    """A temporary directory on the device, created on entry and removed on exit (even after errors)."""

    def __init__(self, target: SshTarget, run_timeout: float = 600.0) -> None:
        self.target = target
        self.run_timeout = run_timeout
        self.remote_dir: str | None = None

    def ssh(self, remote: list[str], timeout: float | None = None, what: str = "") -> subprocess.CompletedProcess:
        """Run ``remote`` on the device; ssh's own failures (exit 255) and timeouts raise a one-line BenchError."""
        timeout = self.run_timeout if timeout is None else timeout
        argv = self.target.ssh_argv(remote)
        try:
            done = run_child(argv, timeout)
        except FileNotFoundError:
            raise BenchError("no `ssh` client on this machine; install OpenSSH (openssh-client)") from None
        except subprocess.TimeoutExpired:
            what = what or f"`{remote[0]}`"
            raise BenchError(f"{self.target.where}: {what} did not finish within {timeout:g} s (--timeout)") from None
        if done.returncode == 255:
            raise BenchError(explain_ssh_failure(self.target, done.stderr))
        return done

    def _setup_timeout(self) -> float:
        return self.target.connect_timeout + 30.0

    def __enter__(self) -> Session:
        done = self.ssh(MKTEMP, timeout=self._setup_timeout())
        lines = done.stdout.strip().splitlines()
        path = lines[-1].strip() if lines else ""  # the last line: a login script may print before it
        if done.returncode != 0 or not _REMOTE_DIR.match(path):
            detail = (done.stderr.strip().splitlines() or [path or "no output"])[-1]
            raise BenchError(f"{self.target.where}: cannot create a temporary directory with mktemp: {detail}")
        self.remote_dir = path
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the remote directory; a failure here is a warning, never masks the real error."""
        if self.remote_dir is None:
            return
        try:
            done = self.ssh(["rm", "-rf", "--", self.remote_dir], timeout=self._setup_timeout())
            ok = done.returncode == 0
        except BenchError:
            ok = False
        if not ok:
            import sys

            print(f"edgecnn: warning: could not remove {self.remote_dir} on {self.target.where}", file=sys.stderr)
        self.remote_dir = None

    def path(self, name: str) -> str:
        """The remote path of a file copied into the session directory."""
        assert self.remote_dir is not None
        return str(PurePosixPath(self.remote_dir) / name)

    def copy(self, sources: list[Path]) -> None:
        """Copy local files into the session directory under their own names (one scp)."""
        assert self.remote_dir is not None
        timeout = self.run_timeout + self.target.connect_timeout
        for legacy in (False, True):
            argv = self.target.scp_argv(sources, self.remote_dir, legacy=legacy)
            try:
                done = run_child(argv, timeout)
            except FileNotFoundError:
                raise BenchError("no `scp` on this machine; install OpenSSH (openssh-client)") from None
            except subprocess.TimeoutExpired:
                raise BenchError(f"{self.target.where}: copying the artifacts took over {timeout:g} s") from None
            if done.returncode == 0:
                return
            lowered = done.stderr.lower()
            if not legacy and ("subsystem request failed" in lowered or "sftp" in lowered):
                continue  # a server without SFTP (dropbear, minimal images): the legacy scp protocol
            if done.returncode == 255 and not ("scp:" in lowered and "no such file" in lowered):
                raise BenchError(explain_ssh_failure(self.target, done.stderr))
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise BenchError(f"copying the artifacts to {self.target.where} failed: {last}")
