"""End to end on a real Docker engine: docker compose, DockerSpawner, user volumes.

Needs a Docker engine and the images ``docker/build.sh`` makes
(``.ci/docker-setup.sh`` does both).  Without them every test here is
skipped with the reason; with ``OPENBIS_HUB_DOCKER_TESTS=required`` (CI)
they fail instead.

``COMPOSE`` chooses the compose command (default: ``docker compose`` when
the plugin is installed, else ``docker-compose``).

The openBIS stand-in runs on this host, listening on the Docker bridge's
gateway address, which the hub container and the users' containers reach.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
import pytest

from openbis_hub.deployment.docker import container_name, volume_name

from docker_stack import (  # noqa: F401 (engine: a fixture)
    CONTAINER_PREFIX,
    HUB_DATA,
    HUB_IMAGE,
    NETWORK,
    NOTEBOOK_IMAGE,
    VOLUME_PREFIX,
    Stack,
    docker,
    engine,
    exec_in,
    files_in_volume,
    login,
    notebook,
    run_pybis_in_kernel,
    stop_server,
    user_container,
)
from spy import install_spy_code, parse_spy_record, refused, try_everything_on

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    s = Stack(engine, tmp_path_factory.mktemp("compose"))
    s.down()
    try:
        s.up()
        yield s
    finally:
        s.cleanup()


# --- the tests, in order -----------------------------------------------------------


def test_bad_config_stops_the_hub_with_one_clear_line(engine):
    base = ["run", "--rm", "-e", "OPENBIS_HUB_SSL_CERT=", "-e", "OPENBIS_HUB_BIND_URL=http://:8000"]
    r = docker(*base, HUB_IMAGE, check=False, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith("openbis-hub: OPENBIS_URL is not set"), r.stderr[-500:]
    r = docker(*base, "-e", "OPENBIS_URL=https://openbis.example.org", HUB_IMAGE, check=False, timeout=120)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith("openbis-hub: JUPYTERHUB_CRYPT_KEY is not set"), r.stderr[-500:]


def test_hub_checks_the_engine_and_image_at_start(stack):
    stack.wait_for_log(f"single-user image {NOTEBOOK_IMAGE} present")
    # https only; the certificate is the mounted one
    assert httpx.get(f"{stack.url}/hub/api", verify=stack.hub_ca).json()["version"].startswith("6.1")


def test_eln_flow_spawns_a_container_with_the_notebook_in_its_volume(stack):
    token = stack.token("alice", "alice-pw")
    answer = stack.eln_create(token, "my analysis", "first.ipynb", "x = 1")
    assert answer["path"] == "my analysis/first.ipynb"

    info = user_container("alice")
    assert info is not None and info["State"]["Running"]
    assert info["Config"]["Image"] == NOTEBOOK_IMAGE
    assert info["Config"]["User"] in ("jovyan", "1000")
    assert NETWORK in info["NetworkSettings"]["Networks"]
    assert info["HostConfig"]["Memory"] == 1024**3
    assert info["HostConfig"]["NanoCpus"] or info["HostConfig"]["CpuQuota"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/home/jovyan/work"]["Name"] == volume_name("alice", VOLUME_PREFIX)
    assert mounts["/etc/openbis-hub/openbis-ca.pem"]["RW"] is False
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["OPENBIS_URL"] == stack.standin.url
    assert "OPENBIS_TOKEN" not in env, "the token reaches the server from auth_state, not the environment"
    assert env["OPENBIS_CA_BUNDLE"] == "/etc/openbis-hub/openbis-ca.pem"

    assert "my analysis/first.ipynb" in files_in_volume("alice")

    # the browser URL the ELN opens
    next_path = f"/user/alice/notebooks/{answer['path']}"
    with login(stack, token, next_path) as (browser, page):
        assert page.status_code == 200, page.text[:500]
        assert page.url.path == next_path
        assert answer["link"].endswith(quote(next_path))


def test_kernel_in_the_container_runs_pybis_against_openbis(stack):
    expected = sorted(d["permId"] for d in stack.standin.datasets())
    assert expected, "the stand-in lists no datasets"
    result = run_pybis_in_kernel("alice")
    assert result["status"] == "ok", result
    assert "ERROR" not in result["out"], result
    for perm_id in expected[:3]:
        assert perm_id in result["out"], (perm_id, result)


def test_stop_and_start_keeps_the_notebook(stack):
    token = stack.token("alice", "alice-pw")
    with login(stack, token, "/hub/home") as (browser, page):
        stop_server(stack, browser, "alice")
    assert "my analysis/first.ipynb" in files_in_volume("alice")
    # the next ELN click starts a fresh container on the same volume
    answer = stack.eln_create(token, "my analysis", "first.ipynb", "x = 2")
    # cold: the dry run could not see the folder; the server placed it beside the old one
    assert answer["fileName"] == "first.ipynb"
    assert user_container("alice")["State"]["Running"]
    listing = exec_in("alice", "ls", "/home/jovyan/work/my analysis")
    assert listing.stdout.split("\n")[:2] == ["first 2.ipynb", "first.ipynb"], listing
    # and the ELN's URL for the name it asked for opens the new notebook
    with login(stack, token, "/user/alice/notebooks/my analysis/first.ipynb") as (_, page):
        assert page.status_code == 200 and page.url.path == "/user/alice/notebooks/my analysis/first 2.ipynb"
    assert any(r.headers.get("location", "").endswith("/first%202.ipynb") for r in page.history)


def test_user_with_capitals_and_a_dot(stack):
    token = stack.token("Jane.Doe", "jane-pw")
    answer = stack.eln_create(token, "jane", "nb.ipynb", "y = 1")
    info = user_container("Jane.Doe")
    assert info is not None and info["State"]["Running"], container_name("Jane.Doe", CONTAINER_PREFIX)
    assert info["Name"] == "/" + container_name("Jane.Doe", CONTAINER_PREFIX)
    assert files_in_volume("Jane.Doe") == ["jane/nb.ipynb"]
    assert "jane/nb.ipynb" not in files_in_volume("alice")
    with login(stack, token, f"/user/Jane.Doe/notebooks/{answer['path']}") as (browser, page):
        assert page.status_code == 200
        assert page.url.path == "/user/Jane.Doe/notebooks/jane/nb.ipynb"
    assert run_pybis_in_kernel("Jane.Doe")["status"] == "ok"


def test_credentials_a_user_captures_in_their_container_open_nothing_of_others(stack):
    """The spy of test_least_privilege.py in the Docker deployment.

    The user writes the spy into ~/.jupyter from inside their container; it
    takes effect when that container's server restarts (the engine restarting
    it, as after a crash).  A cold start gets a fresh container without it:
    only the volume survives a stop, and the server reads no config from there.
    """
    stack.standin.add_user("mallory", "mallory-pw")
    victim = stack.token("bob", "bob-pw")
    stack.eln_create(victim, "bob-secrets", "plan.ipynb", "secret = 42")
    token = stack.token("mallory", "mallory-pw")
    stack.eln_create(token, "", "first.ipynb", "x = 1")
    installed = exec_in(
        "mallory", "python", "-c", install_spy_code("~/.jupyter/jupyter_server_config.py", "~/work/spy.jsonl")
    )
    assert installed.returncode == 0, installed.stderr[-1000:]
    docker("restart", container_name("mallory", CONTAINER_PREFIX), timeout=120)
    deadline = time.monotonic() + 120
    while exec_in("mallory", "test", "-s", "/home/jovyan/work/spy.jsonl").returncode != 0:
        assert time.monotonic() < deadline, "the restarted server did not load the user's config"
        time.sleep(0.5)
    with stack.client() as c:  # until the server answers through the proxy again
        while c.get(f"{stack.url}/user/mallory/api/status").status_code not in (401, 403):
            assert time.monotonic() < deadline, "the restarted server does not answer"
            time.sleep(0.5)

    # the product used normally: warm clicks, one with a fresh token, the integrators' API, the browser
    stack.eln_create(token, "work", "warm.ipynb", "1")
    fresh = stack.token("mallory", "mallory-pw")
    stack.eln_create(fresh, "work", "fresh.ipynb", "2")
    with stack.client(headers={"Authorization": f"Bearer {fresh}"}) as c:
        created = c.post(
            f"{stack.url}/services/openbis/api/notebooks", json={"owner": {"object": "/DEMO/STEP1"}, "name": "api"}
        )
        assert created.status_code == 201, created.text
        assert c.get(f"{stack.url}/services/openbis/api/sessions").status_code == 200
    with login(stack, fresh, "/user/mallory/notebooks/work/warm.ipynb") as (browser, page):
        assert page.status_code == 200

    tokens, cookies = parse_spy_record(exec_in("mallory", "cat", "/home/jovyan/work/spy.jsonl").stdout)
    assert len(tokens - {token, fresh}) >= 2, "the spy saw the service's requests and the server's own token"
    assert not tokens & {token, fresh}, "no openBIS token travels to the server"
    for credential in tokens:
        with stack.client(headers={"Authorization": f"token {credential}"}) as client:
            attempts = try_everything_on(client, stack.url, "bob", "bob-secrets", token, "mallory")
        for what, response in attempts.items():
            assert refused(response), (what, response.status_code, response.text[:200])
    for cookie in cookies:
        with stack.client(headers={"Cookie": cookie}) as client:
            attempts = try_everything_on(client, stack.url, "bob", "bob-secrets", token, "mallory")
        for what in ("another user's model and auth_state", "another user's files"):
            assert refused(attempts[what]), (what, attempts[what].status_code)


def test_compose_down_and_up_keeps_users_and_notebooks(stack):
    token = stack.token("alice", "alice-pw")
    with login(stack, token, "/hub/home") as (browser, page):
        assert page.status_code == 200
        stack.down()
        # the users' containers outlive the hub (OPENBIS_HUB_STOP_SERVERS_ON_EXIT is off); the volumes stay
        assert user_container("alice")["State"]["Running"]
        assert docker("volume", "inspect", HUB_DATA, check=False).returncode == 0
        stack.up()
        # the same browser session still works: database and cookie secret survived
        me = browser.get(f"{stack.url}/hub/api/user")
        assert me.status_code == 200 and me.json()["name"] == "alice", me.text
        users_seen = {
            u
            for u in ("alice", "Jane.Doe")
            if browser.get(f"{stack.url}/hub/api/users/{quote(u, safe='')}").status_code != 404
        }
    stack.eln_create(token, "my analysis", "first.ipynb", "x = 3")
    assert files_in_volume("alice") == [
        "my analysis/first 2.ipynb",
        "my analysis/first 3.ipynb",
        "my analysis/first.ipynb",
    ]
    assert files_in_volume("Jane.Doe") == ["jane/nb.ipynb"]
    assert "alice" in users_seen


def test_missing_image_gives_the_eln_a_json_error(stack):
    token = stack.token("Jane.Doe", "jane-pw")
    with login(stack, token, "/hub/home") as (browser, _):
        stop_server(stack, browser, "Jane.Doe")
    stack.up(OPENBIS_HUB_NOTEBOOK_IMAGE="openbis-hub-singleuser:no-such-tag")
    stack.wait_for_log("single-user image 'openbis-hub-singleuser:no-such-tag' is missing")
    # the ELN's click answers at once (its tab shows the failure); the integrators' API waits and says why
    assert stack.eln_post(token, "jane", "again.ipynb", None).status_code == 200
    started = time.monotonic()
    r = stack.api_create(token, "jane", "again")
    assert time.monotonic() - started < 60
    assert r.status_code == 502, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "is not present on the Docker engine" in json.dumps(r.json()), r.json()


def test_dead_docker_engine_gives_the_eln_a_json_error(stack):
    token = stack.token("Jane.Doe", "jane-pw")
    stack.up(OPENBIS_HUB_DOCKER_HOST="tcp://127.0.0.1:9")
    stack.wait_for_log("the Docker engine does not answer")
    started = time.monotonic()
    r = stack.api_create(token, "jane", "again")
    assert time.monotonic() - started < 60
    assert r.status_code == 502, r.text
    assert "Docker engine does not answer" in json.dumps(r.json()), r.json()


def test_idle_culler_stops_idle_servers(stack):
    """Last: with a 10 s idle timeout the culler (a hub service) removes the idle container."""
    stack.up(OPENBIS_HUB_IDLE_TIMEOUT="10")
    token = stack.token("alice", "alice-pw")
    stack.eln_create(token, "cull", "c.ipynb", "1")
    assert user_container("alice") is not None
    deadline = time.monotonic() + 120
    while user_container("alice") is not None:
        assert time.monotonic() < deadline, f"alice's idle server was not culled:\n{stack.logs()}"
        time.sleep(2)
    assert "cull/c.ipynb" in files_in_volume("alice")  # the notebook stays
