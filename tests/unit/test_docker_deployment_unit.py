"""DockerSpawner / SwarmSpawner configuration (no Docker engine needed)."""

from __future__ import annotations

import itertools
import re
import sys
from unittest import mock

import pytest
import requests
from traitlets.config import Config

import docker
from openbis_hub.deployment import Settings
from openbis_hub.deployment import docker as spawners
from openbis_hub.deployment.docker import (
    CONTAINER_CA_PATH,
    OpenBISDockerSpawner,
    OpenBISSwarmSpawner,
    SpawnError,
    configure_docker_spawner,
    container_name,
    describe_docker_error,
    volume_name,
)

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # docker's rule for container and volume names

ENV_KEYS = [
    "OPENBIS_HUB_NOTEBOOK_IMAGE",
    "OPENBIS_HUB_DOCKER_NETWORK",
    "OPENBIS_HUB_MEM_LIMIT",
    "OPENBIS_HUB_CPU_LIMIT",
    "OPENBIS_HUB_IDLE_TIMEOUT",
    "OPENBIS_HUB_PULL_POLICY",
    "OPENBIS_HUB_HUB_CONNECT_IP",
    "OPENBIS_CA_BUNDLE",
    "OPENBIS_HUB_CA_BUNDLE_HOST",
]


@pytest.fixture
def env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def configured(swarm=False, **environ) -> Config:
    c = Config()
    configure_docker_spawner(c, Settings.from_environ(environ), swarm=swarm, check=False)
    return c


def make_spawner(c: Config, name: str, cls=OpenBISDockerSpawner):
    user = mock.Mock()
    user.name = name
    user.url = f"/user/{name}/"
    hub = mock.Mock(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
    return cls(config=c, user=user, hub=hub, _deprecated_db_session=mock.Mock())


# --- names -----------------------------------------------------------------

NAMES = [
    "alice",
    "Alice",
    "ALICE",
    "Jane.Doe",
    "jane.doe",
    "jane-doe",
    "jane_doe",
    "jane-2edoe",
    "jane--2edoe",
    "-4ane-2e-44oe",
    "jane doe",
    "Jane.Doe@ethz.ch",
    "user--foo",
    "müller",
    "a",
    "x" * 60,
]


def test_names_are_valid_docker_names():
    for name in NAMES:
        assert DOCKER_NAME.match(container_name(name)), name
        assert DOCKER_NAME.match(volume_name(name)), name
        assert container_name(name) == container_name(name).lower()


def test_two_different_names_never_collide():
    """Escaping is injective: distinct user names give distinct containers and volumes."""
    containers = {container_name(n) for n in NAMES}
    volumes = {volume_name(n) for n in NAMES}
    assert len(containers) == len(NAMES)
    assert len(volumes) == len(NAMES)
    # exhaustively over short names built from the tricky characters
    alphabet = "aA.-_2e"
    seen = {}
    for length in range(1, 5):
        for chars in itertools.product(alphabet, repeat=length):
            name = "".join(chars)
            escaped = volume_name(name)
            assert seen.setdefault(escaped, name) == name, f"{name!r} and {seen[escaped]!r} share {escaped}"


def test_capitals_and_dots():
    assert volume_name("Jane.Doe") == "openbis-hub-user--4aane-2e-44oe"
    assert volume_name("jane.doe") == "openbis-hub-user-jane-2edoe"
    assert volume_name("alice") == "openbis-hub-user-alice"


def test_spawner_renders_the_same_names(env):
    c = configured()
    for name in ["Jane.Doe", "alice", "jane-doe"]:
        sp = make_spawner(c, name)
        assert sp.object_name == container_name(name)
        assert volume_name(name) in sp.volume_binds
        assert sp.volume_binds[volume_name(name)] == {"bind": "/home/jovyan/work", "mode": "rw"}


# --- configuration from the environment -------------------------------------


def test_defaults(env):
    c = configured()
    assert c.JupyterHub.spawner_class is OpenBISDockerSpawner
    assert c.JupyterHub.hub_ip == "0.0.0.0"
    assert c.JupyterHub.hub_connect_ip == "hub"
    sp = make_spawner(c, "alice")
    assert sp.image == "openbis-hub-singleuser:latest"
    assert sp.network_name == "openbis-hub"
    assert sp.use_internal_ip
    assert sp.remove is True
    assert sp.pull_policy == "never"
    assert sp.notebook_dir == "/home/jovyan/work"
    assert not sp.mem_limit
    assert not sp.cpu_limit


def test_limits_image_network(env):
    c = configured(
        OPENBIS_HUB_NOTEBOOK_IMAGE="registry.example.org/nb:1.2",
        OPENBIS_HUB_DOCKER_NETWORK="jhnet",
        OPENBIS_HUB_MEM_LIMIT="2G",
        OPENBIS_HUB_CPU_LIMIT="1.5",
        OPENBIS_HUB_PULL_POLICY="ifnotpresent",
    )
    sp = make_spawner(c, "alice")
    assert sp.image == "registry.example.org/nb:1.2"
    assert sp.network_name == "jhnet"
    assert sp.mem_limit == 2 * 1024**3
    assert sp.cpu_limit == 1.5
    assert sp.pull_policy == "ifnotpresent"


def test_ca_bundle_mounted_read_only(env, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with mock.patch("os.path.exists", lambda p: False if p == "/.dockerenv" else True):
        c = configured(OPENBIS_CA_BUNDLE=str(ca))
    sp = make_spawner(c, "alice")
    assert sp.volume_binds[str(ca)] == {"bind": CONTAINER_CA_PATH, "mode": "ro"}
    assert sp.environment["OPENBIS_CA_BUNDLE"] == CONTAINER_CA_PATH


def test_ca_bundle_keeps_the_hubs_spawner_environment(env):
    c = Config()
    c.Spawner.environment = {"OPENBIS_HUB_FRAME_ANCESTORS": "https://openbis.example.org"}
    settings = Settings(openbis_ca_bundle="/c/ca.pem", ca_bundle_host="/h/ca.pem")
    configure_docker_spawner(c, settings, check=False)
    sp = make_spawner(c, "alice")
    assert sp.environment == {
        "OPENBIS_HUB_FRAME_ANCESTORS": "https://openbis.example.org",
        "OPENBIS_CA_BUNDLE": CONTAINER_CA_PATH,
    }


def test_ca_bundle_host_path_override(env):
    c = configured(OPENBIS_CA_BUNDLE="/srv/openbis-hub/certs/ca.pem", OPENBIS_HUB_CA_BUNDLE_HOST="/opt/certs/ca.pem")
    sp = make_spawner(c, "alice")
    assert sp.volume_binds["/opt/certs/ca.pem"]["bind"] == CONTAINER_CA_PATH


def test_host_path_of_maps_through_the_hub_containers_mounts():
    client = mock.Mock()
    client.containers.get.return_value.attrs = {
        "Mounts": [
            {"Type": "volume", "Name": "hub-data", "Destination": "/srv/openbis-hub/data"},
            {"Type": "bind", "Source": "/opt/site/certs", "Destination": "/srv/openbis-hub/certs"},
        ]
    }
    with mock.patch("os.path.exists", return_value=True):
        assert spawners.host_path_of("/srv/openbis-hub/certs/ca.pem", client) == "/opt/site/certs/ca.pem"
        with pytest.raises(ValueError, match="named volume"):
            spawners.host_path_of("/srv/openbis-hub/data/ca.pem", client)
        with pytest.raises(ValueError, match="not on a volume"):
            spawners.host_path_of("/etc/ca.pem", client)


def test_no_ca_no_extra_mount(env):
    sp = make_spawner(configured(), "alice")
    assert list(sp.volume_binds) == [volume_name("alice")]


def test_idle_culler_service_and_role(env):
    c = configured(OPENBIS_HUB_IDLE_TIMEOUT="1800")
    (service,) = c.JupyterHub.services
    assert service["name"] == "idle-culler"
    assert service["command"][:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert "--timeout=1800" in service["command"]
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == ["idle-culler"]
    assert sorted(role["scopes"]) == sorted(["list:users", "read:users:activity", "read:servers", "delete:servers"])
    assert not any(s.startswith("admin") for s in role["scopes"])


def test_idle_culler_keeps_existing_services(env):
    c = Config()
    c.JupyterHub.services = [{"name": "openbis", "url": "http://127.0.0.1:9999"}]
    c.JupyterHub.load_roles = [{"name": "openbis", "scopes": ["admin:users"], "services": ["openbis"]}]
    configure_docker_spawner(c, Settings(), check=False)
    configure_docker_spawner(c, Settings(), check=False)  # idempotent
    assert [s["name"] for s in c.JupyterHub.services] == ["openbis", "idle-culler"]
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["openbis", "idle-culler"]


def test_idle_culler_off(env):
    c = configured(OPENBIS_HUB_IDLE_TIMEOUT="0")
    assert "services" not in c.JupyterHub


# --- swarm --------------------------------------------------------------------


def test_swarm_uses_named_volumes(env):
    c = configured(swarm=True)
    assert c.JupyterHub.spawner_class is OpenBISSwarmSpawner
    sp = make_spawner(c, "Jane.Doe", cls=OpenBISSwarmSpawner)
    assert sp.remove is True
    assert sp.extra_endpoint_spec == {"mode": "dnsrr"}  # no virtual IP in front of one task
    (mount,) = sp.mounts
    assert mount["Type"] == "volume"
    assert mount["Source"] == volume_name("Jane.Doe")
    assert mount["Target"] == "/home/jovyan/work"


def test_swarm_ca_is_a_read_only_bind(env):
    c = configured(swarm=True, OPENBIS_CA_BUNDLE="/x/ca.pem", OPENBIS_HUB_CA_BUNDLE_HOST="/opt/ca.pem")
    sp = make_spawner(c, "alice", cls=OpenBISSwarmSpawner)
    ca = [m for m in sp.mounts if m["Target"] == CONTAINER_CA_PATH][0]
    assert ca["Type"] == "bind" and ca["ReadOnly"] is True and ca["Source"] == "/opt/ca.pem"


# --- errors -----------------------------------------------------------------


def test_missing_image_message():
    err = docker.errors.ImageNotFound('404 Client Error: Not Found ("No such image: nb:1")')
    msg = describe_docker_error(err, "nb:1")
    assert "'nb:1' is not present on the Docker engine" in msg
    assert "docker/build.sh" in msg


def test_dead_daemon_message():
    err = requests.exceptions.ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file'))")
    assert "Docker engine does not answer" in describe_docker_error(err, "nb:1")


async def test_start_with_missing_image_raises_clear_spawn_error(env):
    sp = make_spawner(configured(), "alice")

    async def fake_docker(method, *args, **kwargs):
        if method == "inspect_image":
            raise docker.errors.ImageNotFound("No such image: openbis-hub-singleuser:latest")
        raise AssertionError(f"unexpected docker call {method}")

    with mock.patch.object(sp, "docker", fake_docker):
        with pytest.raises(SpawnError, match="is not present on the Docker engine"):
            await sp.pull_image(sp.image)


async def test_start_with_dead_daemon_raises_clear_spawn_error(env):
    sp = make_spawner(configured(), "alice")

    async def fake_docker(method, *args, **kwargs):
        raise requests.exceptions.ConnectionError("Connection refused")

    with mock.patch.object(sp, "docker", fake_docker):
        with pytest.raises(SpawnError, match="Docker engine does not answer"):
            await sp.start()


def test_check_docker_dead_daemon():
    with mock.patch(
        "docker.from_env", side_effect=docker.errors.DockerException("Error while fetching server API version")
    ):
        ok, line = spawners.check_docker("nb:1")
    assert not ok
    assert line.startswith("openbis-hub: the Docker engine does not answer")
    assert "\n" not in line


def test_check_docker_missing_image():
    client = mock.Mock()
    client.version.return_value = {"Version": "20.10.24"}
    client.images.get.side_effect = docker.errors.ImageNotFound("nope")
    ok, line = spawners.check_docker("nb:1", client=client)
    assert not ok
    assert "single-user image 'nb:1' is missing" in line and "docker/build.sh" in line
