"""The docker compose deployment under test, for the ``docker`` tests and the Docker benchmarks.

Needs a Docker engine and the images ``docker/build.sh`` makes
(``.ci/docker-setup.sh`` does both).  Without them the ``engine`` fixture
skips with the reason; with ``OPENBIS_HUB_DOCKER_TESTS=required`` (CI) it
fails instead.

``COMPOSE`` chooses the compose command (default: ``docker compose`` when
the plugin is installed, else ``docker-compose``).

The openBIS stand-in runs on this host, listening on the Docker bridge's
gateway address, which the hub container and the users' containers reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from openbis_hub.deployment.docker import container_name, volume_name

from conftest import ISSUED_TOKENS
from hub import free_port
from standin import start_standin

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "openbis-hub-e2e"  # every name a Stack gives Docker starts with its prefix (see Stack)
PROJECT = NETWORK = CONTAINER_PREFIX = PREFIX
HUB_DATA = f"{PREFIX}-data"
VOLUME_PREFIX = f"{PREFIX}-user"
HUB_IMAGE = os.environ.get("OPENBIS_HUB_IMAGE", "openbis-hub:latest")
NOTEBOOK_IMAGE = os.environ.get("OPENBIS_HUB_NOTEBOOK_IMAGE", "openbis-hub-singleuser:latest")
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
REQUIRED = os.environ.get("OPENBIS_HUB_DOCKER_TESTS", "").lower() == "required"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"OPENBIS_HUB_DOCKER_TESTS=required but {reason}", pytrace=False)
    pytest.skip(reason)


def docker(*args, check=True, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def compose_command() -> list[str]:
    if os.environ.get("COMPOSE"):
        return shlex.split(os.environ["COMPOSE"])
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return []


def bridge_gateway() -> str:
    out = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
    return out or "172.17.0.1"


@pytest.fixture(scope="module")
def engine():
    """Skip (or fail, in CI) with the reason when there is no engine or no images."""
    if not shutil.which("docker"):
        _unavailable("no docker command on PATH (apt-get install docker.io)")
    try:
        version = docker("version", "--format", "{{.Server.Version}}", timeout=20)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        _unavailable(f"no Docker engine answers: {(getattr(e, 'stderr', '') or str(e)).strip()[:300]}")
    compose = compose_command()
    if not compose:
        _unavailable("neither `docker compose` nor `docker-compose` is installed")
    for image in (HUB_IMAGE, NOTEBOOK_IMAGE):
        if docker("image", "inspect", image, check=False).returncode != 0:
            _unavailable(f"image {image} is missing: build it with docker/build.sh")
    return {"version": version.stdout.strip(), "compose": compose}


class Stack:
    """The compose project under test, plus the stand-in it logs in to.

    A subclass with its own ``prefix`` gets a project, network, data volume,
    users' volumes and containers of its own, all named from it.
    """

    prefix = PREFIX
    compose_files = ("docker-compose.yml",)
    extra_env: dict = {}

    @property
    def project(self) -> str:
        return self.prefix

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def container_prefix(self) -> str:
        return self.prefix

    @property
    def hub_data(self) -> str:
        return f"{self.prefix}-data"

    @property
    def volume_prefix(self) -> str:
        return f"{self.prefix}-user"

    def __init__(self, engine, tmp: Path):
        self.compose_cmd = engine["compose"]
        self.tmp = tmp
        self.gateway = bridge_gateway()
        self.standin = start_standin(tmp / "standin", host=self.gateway, extra_args=["--tls-host", self.gateway])
        certs = tmp / "certs"
        certs.mkdir()
        from openbis_hub_dev.standin.tls import ensure_tls

        hub_tls = ensure_tls(tmp / "hub-tls", hosts=["127.0.0.1", "localhost", "hub"])
        shutil.copy(hub_tls.cert_file, certs / "hub.crt")
        shutil.copy(hub_tls.key_file, certs / "hub.key")
        shutil.copy(self.standin.ca_file, certs / "openbis-ca.pem")
        for f in certs.iterdir():
            f.chmod(0o644)
        self.hub_ca = ssl.create_default_context(cafile=hub_tls.ca_file)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "COMPOSE_PROJECT_NAME": self.project,
            "OPENBIS_URL": self.standin.url,
            "OPENBIS_CA_BUNDLE": "/srv/openbis-hub/certs/openbis-ca.pem",
            "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
            "OPENBIS_HUB_CERTS_DIR": str(certs),
            "OPENBIS_HUB_PORT": str(self.port),
            "OPENBIS_HUB_PUBLIC_URL": self.url,
            "OPENBIS_HUB_DOCKER_NETWORK": self.network,
            "OPENBIS_HUB_DATA_VOLUME": self.hub_data,
            "OPENBIS_HUB_VOLUME_PREFIX": self.volume_prefix,
            "OPENBIS_HUB_CONTAINER_PREFIX": self.container_prefix,
            "OPENBIS_HUB_IMAGE": HUB_IMAGE,
            "OPENBIS_HUB_NOTEBOOK_IMAGE": NOTEBOOK_IMAGE,
            "OPENBIS_HUB_MEM_LIMIT": "1G",
            "OPENBIS_HUB_CPU_LIMIT": "1.0",
            **self.extra_env,
        }
        if os.environ.get("DOCKER_HOST"):  # the engine the tests (and compose) talk to
            self.env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]

    def compose(self, *args, check=True, timeout=300, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                *self.compose_cmd,
                *(a for f in self.compose_files for a in ("-f", str(ROOT / f))),
                "--project-directory",
                str(ROOT),
                *args,
            ],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env={**self.env, **env},
            cwd=ROOT,
        )

    def up(self, **env):
        self.compose("up", "-d", "--no-build", "hub", **env)
        self.wait_ready()

    def hub_container(self) -> str:
        return self.compose("ps", "-q", "hub").stdout.strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "80", "hub", check=False).stdout

    def wait_for_log(self, *words: str, timeout: float = 60) -> str:
        """The hub's log once a line holds every one of ``words`` (the hub writes it asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.compose("logs", "--no-color", "hub", check=False).stdout
            if any(all(w in line for w in words) for line in logs.splitlines()):
                return logs
            assert time.monotonic() < deadline, f"no log line with {words}:\n{logs[-3000:]}"
            time.sleep(0.5)

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/hub/api", verify=self.hub_ca, timeout=5)
                if r.status_code == 200:
                    return
                last = r.status_code
            except httpx.HTTPError as e:
                last = e
            time.sleep(1)
        raise AssertionError(f"hub did not answer in {timeout}s ({last}):\n{self.logs()}")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(verify=self.hub_ca, timeout=180, **kwargs)

    def token(self, user: str, password: str) -> str:
        envelope = self.standin.rpc("login", user, password)
        assert envelope.get("result"), envelope
        ISSUED_TOKENS.append(envelope["result"])  # none may reach a log (conftest scans them)
        return envelope["result"]

    def eln_post(self, token: str, folder: str, filename: str, notebook: dict | None, *, client=None):
        """One of the ELN's POSTs (``notebook=None``: the dry run)."""
        test = notebook is None
        url = f"{self.url}/services/openbis/?token={token}&folder={folder}&filename={filename}&test={test}"
        body = b"TEST" if test else json.dumps(notebook).encode()
        headers = dict(FORM, Origin=self.standin.url)
        with client or self.client() as c:
            return c.post(url, content=body, headers=headers)

    def wait_for_server(self, token: str, user: str, timeout: float = 180) -> None:
        """Until the user's server is ready: a cold ELN click answers before that (the popup window)."""
        deadline = time.monotonic() + timeout
        with self.client() as browser:
            browser.get(f"{self.url}/hub/login", params={"token": token, "next": "/hub/home"})
            while True:
                model = browser.get(f"{self.url}/hub/api/users/{quote(user, safe='')}")
                server = model.json().get("servers", {}).get("") if model.status_code == 200 else None
                if server and server.get("ready"):
                    return
                assert time.monotonic() < deadline, f"the server of {user} did not start:\n{self.logs()}"
                time.sleep(0.5)

    def api_create(self, token: str, folder: str, name: str) -> httpx.Response:
        """The integrators' ``POST api/notebooks``: it waits for the server (and reports its failure)."""
        with self.client(headers={"Authorization": f"Bearer {token}"}) as c:
            return c.post(
                f"{self.url}/services/openbis/api/notebooks",
                json={"owner": {"object": "/DEMO/STEP1"}, "folder": folder, "name": name},
            )

    def eln_create(self, token: str, folder: str, filename: str, source: str, user: str | None = None) -> dict:
        """The ELN's click; then, as the researcher's tab does, wait until the server is up."""
        dry = self.eln_post(token, folder, filename, None)
        assert dry.status_code == 200, f"{dry.status_code} {dry.text}\n{self.logs()}"
        write = self.eln_post(token, folder, filename, notebook(source))
        assert write.status_code == 200, f"{write.status_code} {write.text}\n{self.logs()}"
        answer = write.json()
        assert set(answer) >= {"fileName", "path", "link"}
        assert answer["fileName"] == dry.json()["fileName"]
        self.wait_for_server(token, user or self.standin.rpc("getSessionInformation", token)["result"]["userName"])
        return answer

    def down(self):
        self.compose("down", "--remove-orphans", check=False, timeout=180)

    def save_logs(self):
        """The deployment's logs (hub, proxy, service, users' servers) as files, for the log scan."""
        (self.tmp / "compose.log").write_text(self.compose("logs", "--no-color", check=False).stdout)
        for c in docker("ps", "-aq", "--filter", f"name={self.container_prefix}-", check=False).stdout.split():
            out = docker("logs", c, check=False)
            (self.tmp / f"container-{c}.log").write_text(out.stdout + out.stderr)

    def cleanup(self):
        self.save_logs()
        self.down()
        for c in docker("ps", "-aq", "--filter", f"name={self.container_prefix}-", check=False).stdout.split():
            docker("rm", "-f", c, check=False)
        # containers of swarm services go away with the service, shortly after
        for _ in range(30):
            if not docker("ps", "-aq", "--filter", f"name={self.container_prefix}-", check=False).stdout.split():
                break
            time.sleep(1)
        for v in docker("volume", "ls", "-q", "--filter", f"name={self.volume_prefix}-", check=False).stdout.split():
            docker("volume", "rm", "-f", v, check=False)
        docker("volume", "rm", "-f", self.hub_data, check=False)
        docker("network", "rm", self.network, check=False)
        self.standin.stop()


def notebook(source: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def user_container(user: str, prefix: str = CONTAINER_PREFIX) -> dict | None:
    out = docker("inspect", container_name(user, prefix), check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def exec_in(user: str, *cmd: str, container: str | None = None) -> subprocess.CompletedProcess:
    return docker("exec", container or container_name(user, CONTAINER_PREFIX), *cmd, check=False, timeout=180)


def files_in_volume(user: str, prefix: str = VOLUME_PREFIX) -> list[str]:
    """Every notebook in the user's volume, read by a throwaway container (not the user's)."""
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "find",
        "-v",
        f"{volume_name(user, prefix)}:/v:ro",
        NOTEBOOK_IMAGE,
        "/v",
        "-type",
        "f",
        "-name",
        "*.ipynb",
        "-not",
        "-path",
        "*/.ipynb_checkpoints/*",
    )
    return sorted(p[len("/v/") :] for p in out.stdout.splitlines())


# a kernel in the user's container runs pybis against the stand-in with the
# environment the hub gave the container (OPENBIS_URL, OPENBIS_CA_BUNDLE) and the token file
# the server wrote from the user's auth_state
KERNEL_PYBIS = r"""
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3")
out = []
def hook(msg):
    if msg["msg_type"] == "stream":
        out.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
code = '''
import os
from urllib.parse import urlsplit
from pybis import Openbis
host = urlsplit(os.environ["OPENBIS_URL"]).hostname
o = Openbis(os.environ["OPENBIS_URL"], verify_certificates=os.environ["OPENBIS_CA_BUNDLE"])
o.set_token(open(os.path.expanduser(f"~/.pybis/{host}.token")).read())
print("user", o.get_session_info().userName if hasattr(o, "get_session_info") else "?")
print("datasets", sorted(d.permId for d in o.get_datasets()))
'''
reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
km.shutdown_kernel(now=True)
print(json.dumps({"status": reply["content"]["status"], "out": "".join(out)}))
"""


def run_pybis_in_kernel(user: str, container: str | None = None) -> dict:
    result = exec_in(user, "python", "-c", KERNEL_PYBIS, container=container)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def stop_server(stack: Stack, browser: httpx.Client, user: str):
    """Stop the user's server the way the hub's home page does (cookie + xsrf)."""
    home = browser.get(f"{stack.url}/hub/home")
    assert home.status_code == 200, home.text[:300]
    xsrf = browser.cookies.get("_xsrf", path="/hub/")
    r = browser.delete(f"{stack.url}/hub/api/users/{quote(user, safe='')}/server", headers={"X-XSRFToken": xsrf})
    assert r.status_code in (202, 204), f"{r.status_code} {r.text}"
    for _ in range(120):
        if user_container(user) is None:
            return
        time.sleep(0.5)
    raise AssertionError(f"the container of {user} is still there")


@contextlib.contextmanager
def login(stack: Stack, token: str, next_path: str):
    """A browser (cookie jar, following redirects) that opened the ELN's link."""
    with stack.client(follow_redirects=True) as browser:
        page = browser.get(f"{stack.url}/hub/login", params={"token": token, "next": next_path})
        yield browser, page
