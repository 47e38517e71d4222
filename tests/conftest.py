"""Fixtures: the openBIS stand-in and a real JupyterHub stack in front of it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub import RunningHub, proxy_available  # noqa: E402
from standin import openbis_standin, own_standin, start_standin  # noqa: E402,F401  (fixture re-export)

ISSUED_TOKENS: list[str] = []  # every token tests used; none may reach a log


def pytest_collection_modifyitems(config, items):
    """Everything outside tests/unit starts processes: the integration layer."""
    for item in items:
        if item.path.parent.name != "unit":
            item.add_marker(pytest.mark.integration)


LOG_ROOTS: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _log_root(tmp_path_factory):
    """Every log of the session lies under pytest's base temporary directory."""
    LOG_ROOTS.append(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session, exitstatus):
    """The last word: no token the tests used appears in any log of this session."""
    from logscan import leaks, logs_under

    if not (LOG_ROOTS and ISSUED_TOKENS):
        return
    found = leaks(ISSUED_TOKENS, logs_under(*LOG_ROOTS))
    if found:
        session.config.get_terminal_writer().line("tokens in logs:\n" + "\n".join(found), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def openbis_login(standin, user: str, password: str | None = None) -> str:
    """A fresh openBIS session token, as the ELN holds it."""
    answer = standin.rpc("login", user, password or f"{user.split('.')[0].lower()}-pw")
    token = answer.get("result")
    assert token, answer
    ISSUED_TOKENS.append(token)
    return token


class EmbeddingPage:
    """A page on its own origin (another port) whose HTML a test sets, to frame the hub."""

    def __init__(self):
        import http.server
        import threading

        page = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = page.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.html = "<!doctype html><p>empty</p>"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.origin + "/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="session")
def embedding_pages():
    """(allowed, stranger): the hub lets only the first frame it."""
    pages = EmbeddingPage(), EmbeddingPage()
    yield pages
    for page in pages:
        page.stop()


# an openBIS user whose hub name differs (username_map), for warm launches with a fresh token
MAPPED_USERS = 'c.OpenBISAuthenticator.username_map = {"Mapped.User": "mapped-user"}'


@pytest.fixture(scope="session")
def hub(openbis_standin, embedding_pages, tmp_path_factory):
    """JupyterHub + proxy + launch service + local single-user servers, from jupyterhub_config.py."""
    if not proxy_available():
        pytest.fail("configurable-http-proxy is missing: run `npm install` (./scripts/test does)")
    allowed = embedding_pages[0].origin
    running = RunningHub(
        tmp_path_factory.mktemp("hub"),
        openbis_standin.url,
        openbis_standin.ca_file,
        extra_env={"OPENBIS_HUB_FRAME_ANCESTORS": f"{openbis_standin.url} {allowed}"},
        extra_config=MAPPED_USERS,
    ).start()
    yield running
    running.stop()


@pytest.fixture
def token_for(openbis_standin):
    def login(user: str = "alice", password: str | None = None) -> str:
        return openbis_login(openbis_standin, user, password)

    return login


# a second stack with short timeouts and servers that fail or hang on purpose:
# bob's spawn fails at once (like a missing image), Jane.Doe's server never answers
BROKEN_SPAWNS = """
def _break_some_servers(spawner):
    if spawner.user.name == "bob":
        raise RuntimeError("image openbis-hub/missing:1 not found")
    elif spawner.user.name == "Jane.Doe":
        spawner.cmd = ["sleep", "600"]
c.Spawner.pre_spawn_hook = _break_some_servers
"""


@pytest.fixture(scope="session")
def slow_hub(openbis_standin, tmp_path_factory):
    running = RunningHub(
        tmp_path_factory.mktemp("slow-hub"),
        openbis_standin.url,
        openbis_standin.ca_file,
        extra_env={
            "OPENBIS_HUB_OPENBIS_TIMEOUT": "2",
            "OPENBIS_HUB_SPAWN_TIMEOUT": "4",
            "OPENBIS_HUB_CREATE_PAT": "true",
        },
        extra_config=BROKEN_SPAWNS,
    ).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def down_hub(tmp_path_factory):
    """A hub whose openBIS does not answer at all (nothing listens on its port)."""
    from hub import free_port

    running = RunningHub(
        tmp_path_factory.mktemp("down-hub"),
        f"https://127.0.0.1:{free_port()}",
        None,
        extra_env={"OPENBIS_HUB_OPENBIS_TIMEOUT": "2"},
    ).start()
    yield running
    running.stop()
