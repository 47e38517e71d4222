"""Fixtures: the openBIS stand-in and a real JupyterHub stack in front of it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub import RunningHub, proxy_available  # noqa: E402
from standin import openbis_standin, start_standin  # noqa: E402,F401  (fixture re-export)


def openbis_login(standin, user: str, password: str | None = None) -> str:
    """A fresh openBIS session token, as the ELN holds it."""
    answer = standin.rpc("login", user, password or f"{user.split('.')[0].lower()}-pw")
    token = answer.get("result")
    assert token, answer
    return token


@pytest.fixture(scope="session")
def hub(openbis_standin, tmp_path_factory):
    """JupyterHub + proxy + launch service + local single-user servers, from jupyterhub_config.py."""
    if not proxy_available():
        pytest.fail("configurable-http-proxy is missing: run `npm install` (./scripts/test does)")
    running = RunningHub(tmp_path_factory.mktemp("hub"), openbis_standin.url, openbis_standin.ca_file).start()
    yield running
    running.stop()


@pytest.fixture
def token_for(openbis_standin):
    def login(user: str = "alice", password: str | None = None) -> str:
        return openbis_login(openbis_standin, user, password)

    return login
