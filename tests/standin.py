"""Helpers to run the openBIS stand-in as a subprocess in tests.

Usage from conftest.py::

    from standin import openbis_standin, start_standin   # noqa: F401  (re-export fixture)

``openbis_standin`` is a session-scoped fixture yielding a :class:`RunningStandIn`
(https with its own CA).  For a private instance (e.g. a short session timeout) call
``start_standin(tmp_path, session_timeout=2)`` and ``.stop()`` it yourself.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from openbis_hub.openbis import AS_V3_PATH

READY_RE = re.compile(r"^openBIS stand-in ready at (\S+) \(CA: (.+)\)$")


class RunningStandIn:
    def __init__(self, proc: subprocess.Popen, url: str, ca_file: str | None, state_dir: Path):
        self.proc = proc
        self.url = url
        self.ca_file = ca_file
        self.state_dir = state_dir
        self._ctx = ssl.create_default_context(cafile=ca_file) if ca_file else None

    # what pybis' verify_certificates wants: the CA path for https, True otherwise
    @property
    def verify(self):
        return self.ca_file if self.ca_file else True

    def _request(self, method: str, path: str, body=None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def rpc(self, method: str, *params, dss: bool = False):
        """Raw JSON-RPC call; returns the decoded envelope (``result`` or ``error``)."""
        path = "/datastore_server/rmi-data-store-server-v3.json" if dss else AS_V3_PATH
        return self._request("POST", path, {"method": method, "params": list(params), "id": "1", "jsonrpc": "2.0"})

    def stats(self) -> dict:
        """``{"total": n, "methods": {method: n}, "http": {...}}``"""
        return self._request("GET", "/standin/stats")

    def reset_stats(self):
        return self._request("POST", "/standin/stats/reset", {})

    def set_delay(self, seconds: float):
        return self._request("POST", "/standin/control", {"delay": seconds})

    def set_session_timeout(self, seconds: float):
        return self._request("POST", "/standin/control", {"session_timeout": seconds})

    def issued(self) -> list[str]:
        """Every session token and personal access token this stand-in handed out."""
        return self._request("GET", "/standin/issued")["tokens"]

    def add_user(self, user: str, password: str):
        return self._request("POST", "/standin/users", {"id": user, "password": password})

    def report_user_name(self, user: str, reported):
        """From now on getSessionInformation of ``user``'s tokens says ``userName: reported``."""
        return self._request("POST", "/standin/control", {"reported_user_names": {user: reported}})

    def expire(self, user: str, pats: bool = False):
        return self._request("POST", "/standin/expire", {"user": user, "pats": pats})

    def datasets(self) -> list:
        return self._request("GET", "/standin/datasets")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_standin(
    state_dir,
    *,
    http: bool = False,
    session_timeout: float | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    extra_args=(),
    timeout: float = 60,
) -> RunningStandIn:
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "openbis_hub_dev.standin",
        "--port",
        str(port),
        "--host",
        host,
        "--state-dir",
        str(state_dir),
    ]
    if http:
        cmd.append("--http")
    if session_timeout is not None:
        cmd += ["--session-timeout", str(session_timeout)]
    cmd += list(extra_args)
    log = open(state_dir / "standin.log", "ab")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    log.close()
    line_box: list[str] = []

    def read_line():
        line_box.append(proc.stdout.readline())

    t = threading.Thread(target=read_line, daemon=True)
    t.start()
    t.join(timeout)
    line = (line_box[0] if line_box else "").strip()
    m = READY_RE.match(line)
    if not m:
        proc.kill()
        err = (state_dir / "standin.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"stand-in did not become ready (got {line!r}); stderr:\n{err}")
    ca = None if m.group(2) == "none" else m.group(2)
    # keep draining stdout so the child never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return RunningStandIn(proc, m.group(1), ca, state_dir)


def _running_standin(tmp_path_factory, name: str):
    s = start_standin(tmp_path_factory.mktemp(name))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def openbis_standin(tmp_path_factory):
    """A shared https stand-in for the whole test session (CA in ``.ca_file``)."""
    yield from _running_standin(tmp_path_factory, "openbis-standin")


@pytest.fixture(scope="module")
def own_standin(tmp_path_factory):
    """A stand-in for one test module alone, for tests that count its calls, delay its answers or
    expire its sessions: the servers of other tests' hubs (token refreshes, the panel's session
    checks) call the shared one at any time."""
    yield from _running_standin(tmp_path_factory, "own-standin")


__all__ = ["RunningStandIn", "start_standin", "openbis_standin", "own_standin", "READY_RE"]

if __name__ == "__main__":  # manual smoke: python tests/standin.py
    import tempfile

    s = start_standin(tempfile.mkdtemp())
    print(s.url, s.ca_file, s.stats())
    time.sleep(0.1)
    s.stop()
