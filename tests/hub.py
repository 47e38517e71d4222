"""Run the real stack for tests: JupyterHub (with configurable-http-proxy, the
launch service and local-process single-user servers) from the project's own
``jupyterhub_config.py``, against the openBIS stand-in.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningHub:
    """A JupyterHub subprocess; ``url`` is the proxy, ``api`` a Hub API client with an admin token."""

    def __init__(
        self,
        workdir: Path,
        openbis_url: str,
        ca_file: str | None,
        extra_env: dict | None = None,
        extra_config: str = "",
        python: str = sys.executable,
        base_config: Path = REPO / "jupyterhub_config.py",
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.log_path = self.workdir / "hub.log"
        config = self.workdir / "test_config.py"
        config.write_text(
            f"load_subconfig({str(base_config)!r})\n"
            "c.JupyterHub.services.append({'name': 'test-admin', 'api_token': %r})\n"
            "c.JupyterHub.load_roles.append({'name': 'test-admin', 'scopes': ['admin:users', 'admin:servers',"
            " 'access:servers', 'tokens', 'admin:auth_state', 'custom:openbis-hub:sync'],"
            " 'services': ['test-admin']})\n"
            "c.JupyterHub.log_level = 'DEBUG'\n"
            "c.Spawner.debug = False\n"
            "%s\n" % (self.admin_token, extra_config)
        )
        self.env = {
            **os.environ,
            "OPENBIS_URL": openbis_url,
            "OPENBIS_CA_BUNDLE": ca_file or "",
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "OPENBIS_HUB_SPAWNER": "local",
            "OPENBIS_HUB_STATE_DIR": str(self.workdir / "state"),
            "OPENBIS_HUB_BIND_URL": self.url,
            "OPENBIS_HUB_HUB_PORT": str(free_port()),
            "OPENBIS_HUB_PROXY_API_PORT": str(free_port()),
            "OPENBIS_HUB_SERVICE_PORT": str(free_port()),
            "OPENBIS_HUB_SPAWN_TIMEOUT": "120",
            "PATH": os.path.dirname(python) + os.pathsep + os.environ.get("PATH", ""),
            **(extra_env or {}),
        }
        self.python = python
        self.config = config
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> RunningHub:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.python, "-m", "jupyterhub", "-f", str(self.config)],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterHub exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/services/openbis/api/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"JupyterHub did not come up in {timeout}s:\n{self.log_text()[-3000:]}")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/hub/api", headers={"Authorization": f"token {self.admin_token}"}, timeout=30
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if getattr(self, "_log", None):
            self._log.close()


def proxy_available() -> bool:
    return (REPO / "node_modules" / ".bin" / "configurable-http-proxy").exists() or bool(
        shutil.which("configurable-http-proxy")
    )
