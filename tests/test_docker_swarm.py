"""The ELN flow on a single-node Docker Swarm with SwarmSpawner.

The hub runs from docker-compose.yml + docker-compose.swarm.yml on an
attachable overlay network; each user's server is a Swarm service.  If this
engine is not in a swarm yet, the tests make it a single-node swarm and leave
it again at the end.  Skipped (or failed, with OPENBIS_HUB_DOCKER_TESTS=required)
like tests/test_docker.py when there is no engine or no images.
"""

from __future__ import annotations

import json
import time

import pytest

from openbis_hub.deployment.docker import container_name, volume_name

from docker_stack import Stack, docker, engine, files_in_volume, login, run_pybis_in_kernel, stop_server  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]


class SwarmStack(Stack):
    prefix = "openbis-hub-e2e-swarm"
    compose_files = ("docker-compose.yml", "docker-compose.swarm.yml")


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


@pytest.fixture(scope="module")
def swarm(engine):  # noqa: F811
    joined_here = False
    if swarm_state() != "active":
        r = docker("swarm", "init", check=False)
        if r.returncode != 0:
            r = docker("swarm", "init", "--advertise-addr", "127.0.0.1", check=False)
        assert r.returncode == 0, r.stderr
        joined_here = True
    try:
        yield
    finally:
        if joined_here:
            docker("swarm", "leave", "--force", check=False)


@pytest.fixture(scope="module")
def stack(swarm, engine, tmp_path_factory):  # noqa: F811
    s = SwarmStack(engine, tmp_path_factory.mktemp("swarm"))
    s.down()
    docker("network", "rm", s.network, check=False)
    docker("network", "create", "--driver", "overlay", "--attachable", s.network)
    try:
        s.up()
        yield s
    finally:
        for service in docker(
            "service", "ls", "-q", "--filter", f"name={s.container_prefix}-", check=False
        ).stdout.split():
            docker("service", "rm", service, check=False)
        s.cleanup()


def service_task_container(stack: Stack, user: str, timeout: float = 60) -> str | None:
    """The id of the running container of the user's service, if any."""
    name = container_name(user, stack.container_prefix)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}").stdout.split()
        if ids:
            return ids[0]
        time.sleep(0.5)
    return None


def test_hub_checks_the_engine_and_image_at_start(stack):
    stack.wait_for_log("single-user image", "present")


def test_eln_flow_spawns_a_swarm_service(stack):
    token = stack.token("Jane.Doe", "jane-pw")
    answer = stack.eln_create(token, "swarm", "nb.ipynb", "z = 1")
    service = json.loads(docker("service", "inspect", container_name("Jane.Doe", stack.container_prefix)).stdout)[0]
    spec = service["Spec"]["TaskTemplate"]
    mounts = {m["Target"]: m for m in spec["ContainerSpec"]["Mounts"]}
    assert mounts["/home/jovyan/work"]["Type"] == "volume"
    assert mounts["/home/jovyan/work"]["Source"] == volume_name("Jane.Doe", stack.volume_prefix)
    assert mounts["/etc/openbis-hub/openbis-ca.pem"]["ReadOnly"] is True
    assert spec["Resources"]["Limits"]["MemoryBytes"] == 1024**3
    assert files_in_volume("Jane.Doe", stack.volume_prefix) == ["swarm/nb.ipynb"]

    next_path = f"/user/Jane.Doe/notebooks/{answer['path']}"
    with login(stack, token, next_path) as (browser, page):
        assert page.status_code == 200
        assert page.url.path == next_path

    container = service_task_container(stack, "Jane.Doe")
    assert container
    result = run_pybis_in_kernel("Jane.Doe", container=container)
    assert result["status"] == "ok" and "ERROR" not in result["out"], result


def test_stop_and_start_keeps_the_notebook(stack):
    token = stack.token("Jane.Doe", "jane-pw")
    with login(stack, token, "/hub/home") as (browser, _):
        home = browser.get(f"{stack.url}/hub/home")
        xsrf = browser.cookies.get("_xsrf", path="/hub/")
        r = browser.delete(f"{stack.url}/hub/api/users/Jane.Doe/server", headers={"X-XSRFToken": xsrf})
        assert home.status_code == 200 and r.status_code in (202, 204), r.text
    for _ in range(60):
        if (
            docker("service", "inspect", container_name("Jane.Doe", stack.container_prefix), check=False).returncode
            != 0
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the service is still there")
    stack.eln_create(token, "swarm", "nb.ipynb", "z = 2")  # cold: placed beside the old one
    deadline = time.monotonic() + 60  # a Swarm service reuses its name: the old task may answer first
    while (files := files_in_volume("Jane.Doe", stack.volume_prefix)) != ["swarm/nb 2.ipynb", "swarm/nb.ipynb"]:
        assert time.monotonic() < deadline, files
        time.sleep(1)


def test_missing_image_gives_the_eln_a_json_error(stack):
    token = stack.token("alice", "alice-pw")
    stack.up(OPENBIS_HUB_NOTEBOOK_IMAGE="openbis-hub-singleuser:no-such-tag")
    started = time.monotonic()
    r = stack.api_create(token, "x", "y")
    assert time.monotonic() - started < 60
    assert r.status_code == 502, r.text
    assert "is not present on the Docker engine" in json.dumps(r.json())
