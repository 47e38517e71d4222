"""Run each user's notebook server in its own container: Docker or Docker Swarm.

``jupyterhub_config.py`` calls :func:`configure_docker_spawner` when
``OPENBIS_HUB_SPAWNER`` is ``docker`` or ``swarm``.  Everything comes from the
environment (see ``.env.example``):

``OPENBIS_HUB_NOTEBOOK_IMAGE``
    the single-user image (default ``openbis-hub-singleuser:latest``); its
    JupyterHub major.minor must match the hub's.
``OPENBIS_HUB_DOCKER_NETWORK``
    the network the hub and the user containers share (default ``openbis-hub``).
``OPENBIS_HUB_HUB_CONNECT_IP``
    how user containers reach the hub (default ``hub``, the compose service).
``OPENBIS_HUB_NOTEBOOK_DIR``
    where each user's persistent volume is mounted (default ``/home/jovyan/work``).
``OPENBIS_HUB_VOLUME_PREFIX``
    user volumes are named ``<prefix>-<escaped user name>`` (default ``openbis-hub-user``).
``OPENBIS_HUB_MEM_LIMIT`` / ``OPENBIS_HUB_CPU_LIMIT``
    per-user limits, e.g. ``2G`` and ``1.5``; empty means none.
``OPENBIS_HUB_PULL_POLICY``
    ``never`` (default: images are built locally, see ``docker/build.sh``),
    ``ifnotpresent`` or ``always`` for sites with a registry.
``OPENBIS_HUB_START_TIMEOUT``
    seconds a container may take to answer (default 120).
``OPENBIS_HUB_IDLE_TIMEOUT``
    seconds of inactivity before the idle culler stops a server (default
    3600; ``0`` turns the culler off).
``OPENBIS_CA_BUNDLE`` / ``OPENBIS_HUB_CA_BUNDLE_HOST``
    the CA file that signs openBIS's certificate, as the hub sees it, and
    (optional) the same file's path on the Docker host.  It is mounted
    read-only into every user container at :data:`CONTAINER_CA_PATH`.  When
    the hub itself runs in a container the host path is found by looking
    at the hub container's own mounts.

User names keep openBIS's spelling (``Jane.Doe``).  Container and volume names
use DockerSpawner's escaping: every character outside ``[a-z0-9]`` (capitals,
dots, ``-`` itself) becomes ``-`` plus its hex code, so ``Jane.Doe`` becomes
``-4aane-2e-44oe``.  The mapping is injective, so two users can never share
a container or a volume.
"""

from __future__ import annotations

import os
import socket
import sys

import requests
from docker.types import Mount
from dockerspawner import DockerSpawner, SwarmSpawner

import docker

DEFAULT_IMAGE = "openbis-hub-singleuser:latest"
DEFAULT_NETWORK = "openbis-hub"
DEFAULT_NOTEBOOK_DIR = "/home/jovyan/work"
DEFAULT_VOLUME_PREFIX = "openbis-hub-user"
CONTAINER_CA_PATH = "/etc/openbis-hub/openbis-ca.pem"
IDLE_CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


class SpawnError(RuntimeError):
    """A container could not be started; the message says why and what to do.

    JupyterHub shows it as ``Spawn failed: <message>`` and the launch service
    hands it to the ELN.
    """


def describe_docker_error(error: Exception, image: str) -> str:
    """One sentence an admin can act on, for an error of the Docker client."""
    if isinstance(error, docker.errors.ImageNotFound) or (
        isinstance(error, docker.errors.NotFound) and "image" in str(error).lower()
    ):
        return (
            f"The single-user image {image!r} is not present on the Docker engine. "
            "Build it with docker/build.sh (or set OPENBIS_HUB_PULL_POLICY=ifnotpresent "
            "to pull it from a registry)."
        )
    if isinstance(error, requests.exceptions.ConnectionError) or (
        isinstance(error, docker.errors.DockerException) and not isinstance(error, docker.errors.APIError)
    ):
        return f"The Docker engine does not answer ({_first_line(error)}). Is dockerd running and the socket mounted?"
    if isinstance(error, docker.errors.APIError):
        return f"The Docker engine refused to start the container: {error.explanation or _first_line(error)}"
    return _first_line(error)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]


class _ClearErrorsMixin:
    """Turn the Docker client's errors into a :class:`SpawnError` with a clear reason."""

    async def start(self):
        try:
            return await super().start()
        except SpawnError:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            message = describe_docker_error(e, self.image)
            self.log.error("Could not start %s for %s: %s", self.object_type, self.user.name, message)
            raise SpawnError(message) from None

    async def pull_image(self, image):
        try:
            return await super().pull_image(image)
        except docker.errors.NotFound as e:
            # pull_policy "never" re-raises inspect_image's 404; a failed pull gives another 404
            raise SpawnError(describe_docker_error(docker.errors.ImageNotFound(str(e)), image)) from None


class OpenBISDockerSpawner(_ClearErrorsMixin, DockerSpawner):
    """DockerSpawner whose failures read as one clear sentence."""


class OpenBISSwarmSpawner(_ClearErrorsMixin, SwarmSpawner):
    """SwarmSpawner with named volumes (upstream mounts everything as a bind).

    A volume source that is not an absolute path is a Docker named volume; on a
    multi-node swarm use ``volume_driver`` for volumes that follow the user
    between nodes.
    """

    async def pull_image(self, image):
        # upstream skips pulling on swarm; we still check that the manager has
        # the image, so a missing image fails at once instead of a task that
        # stays pending until start_timeout
        if self.pull_policy in ("never", "skip"):
            try:
                await self.docker("inspect_image", image)
            except docker.errors.NotFound as e:
                raise SpawnError(describe_docker_error(docker.errors.ImageNotFound(str(e)), image)) from None
            return
        return await super().pull_image(image)

    @property
    def mounts(self):
        driver = self.mount_driver_config
        mounts = []
        for source, vol in self.volume_binds.items():
            is_volume = not source.startswith("/")
            mounts.append(
                Mount(
                    target=vol["bind"],
                    source=source,
                    type="volume" if is_volume else "bind",
                    read_only=vol["mode"] == "ro",
                    driver_config=driver if is_volume else None,
                )
            )
        return mounts


def container_name(username: str, prefix: str = "jupyter") -> str:
    """The container (or swarm service) name DockerSpawner gives ``username``'s server."""
    return f"{prefix}-{DockerSpawner._escape(username)}"


def volume_name(username: str, prefix: str = DEFAULT_VOLUME_PREFIX) -> str:
    """The name of ``username``'s persistent volume."""
    return f"{prefix}-{DockerSpawner._escape(username)}"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def host_path_of(path: str, client: docker.DockerClient | None = None) -> str:
    """The Docker host's path of ``path`` as this process sees it.

    Outside a container that is ``path`` itself.  Inside one (the hub in
    docker compose), the mount that holds ``path`` tells where it lives on
    the host, which is what a bind mount into a user container needs.
    """
    if not os.path.exists("/.dockerenv"):
        return path
    client = client or docker.from_env(timeout=10)
    own = client.containers.get(socket.gethostname())
    best = None
    for mount in own.attrs.get("Mounts", []):
        dest = mount.get("Destination", "").rstrip("/")
        if path == dest or path.startswith(dest + "/"):
            if best is None or len(dest) > len(best[0]):
                best = (dest, mount)
    if best is None:
        raise ValueError(f"{path} is not on a volume of the hub container, so user containers cannot mount it")
    dest, mount = best
    if mount.get("Type") != "bind":
        raise ValueError(f"{path} is on the named volume {mount.get('Name')!r}; put the CA file on a bind mount")
    return mount["Source"] + path[len(dest) :]


def check_docker(image: str, swarm: bool = False, client: docker.DockerClient | None = None) -> tuple[bool, str]:
    """Does the Docker engine answer and hold ``image``?  Returns ``(ok, one line)``."""
    try:
        client = client or docker.from_env(timeout=10)
        version = client.version().get("Version", "?")
    except Exception as e:
        return (
            False,
            f"openbis-hub: the Docker engine does not answer ({_first_line(e)}); spawns will fail until it does",
        )
    where = f"Docker engine {version}"
    if swarm:
        state = client.info().get("Swarm", {}).get("LocalNodeState", "inactive")
        if state != "active":
            return False, f"openbis-hub: {where} is not part of a swarm (state {state}); run `docker swarm init`"
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        return False, (
            f"openbis-hub: single-user image {image!r} is missing on the {where}; "
            "build it with docker/build.sh. Spawns will fail with this reason until then"
        )
    except Exception as e:
        return False, f"openbis-hub: could not inspect image {image!r} on the {where}: {_first_line(e)}"
    size = img.attrs.get("Size", 0) / 1e6
    return True, f"openbis-hub: {where} answers; single-user image {image} present ({img.short_id}, {size:.0f} MB)"


def idle_culler_service(timeout: int) -> tuple[dict, dict]:
    """The idle culler as a hub-managed service, and its least-privilege role."""
    service = {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={timeout}",
            f"--cull-every={max(10, min(300, timeout // 4))}",
        ],
    }
    role = {"name": "idle-culler", "scopes": list(IDLE_CULLER_SCOPES), "services": ["idle-culler"]}
    return service, role


def _append(section, key: str, item: dict) -> None:
    """Append ``item`` to a list config value, whether or not it is set yet."""
    existing = section[key] if key in section else []
    existing = [x for x in list(existing) if x.get("name") != item["name"]]
    section[key] = existing + [item]


def configure_docker_spawner(c, swarm: bool = False, check: bool = True) -> None:
    """Configure ``c`` (the hub's config) for per-user Docker containers or Swarm services."""
    spawner_cls = OpenBISSwarmSpawner if swarm else OpenBISDockerSpawner
    image = _env("OPENBIS_HUB_NOTEBOOK_IMAGE", DEFAULT_IMAGE)
    notebook_dir = _env("OPENBIS_HUB_NOTEBOOK_DIR", DEFAULT_NOTEBOOK_DIR)
    volume_prefix = _env("OPENBIS_HUB_VOLUME_PREFIX", DEFAULT_VOLUME_PREFIX)

    c.JupyterHub.spawner_class = spawner_cls
    # the hub listens on all interfaces of its container; user containers
    # reach it by its name on the shared network
    c.JupyterHub.hub_ip = _env("OPENBIS_HUB_HUB_IP", "0.0.0.0")
    c.JupyterHub.hub_connect_ip = _env("OPENBIS_HUB_HUB_CONNECT_IP", "hub")

    s = c[spawner_cls.__name__]
    s.image = image
    s.pull_policy = _env("OPENBIS_HUB_PULL_POLICY", "never")
    s.network_name = _env("OPENBIS_HUB_DOCKER_NETWORK", DEFAULT_NETWORK)
    s.use_internal_ip = True
    s.prefix = _env("OPENBIS_HUB_CONTAINER_PREFIX", "jupyter")
    # containers go away on stop; the user's files live in the volume
    s.remove = True
    s.notebook_dir = notebook_dir
    if swarm:
        # the hub reaches each service's one task by DNS; a virtual IP would
        # add a load balancer (IPVS) in between that a single task does not need
        # and that some hosts lack
        s.extra_endpoint_spec = {"mode": _env("OPENBIS_HUB_SWARM_ENDPOINT_MODE", "dnsrr")}
    volumes = {f"{volume_prefix}-{{username}}": notebook_dir}

    ca_bundle = _env("OPENBIS_CA_BUNDLE")
    if ca_bundle:
        host_ca = _env("OPENBIS_HUB_CA_BUNDLE_HOST")
        if not host_ca:
            try:
                host_ca = host_path_of(ca_bundle)
            except Exception as e:
                # the hub's logger is not set up yet while the config loads
                print(f"openbis-hub: OPENBIS_CA_BUNDLE is not passed to user containers: {e}", file=sys.stderr)
        if host_ca:
            volumes[host_ca] = {"bind": CONTAINER_CA_PATH, "mode": "ro"}
            # merge into Spawner.environment: a value on the subclass would hide it
            environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
            environment["OPENBIS_CA_BUNDLE"] = CONTAINER_CA_PATH
            c.Spawner.environment = environment
    s.volumes = volumes

    mem = _env("OPENBIS_HUB_MEM_LIMIT")
    if mem:
        s.mem_limit = mem
    cpu = _env("OPENBIS_HUB_CPU_LIMIT")
    if cpu:
        s.cpu_limit = float(cpu)

    # a fresh container needs a few seconds; a missing image fails at once
    # (pull_image), so this only bounds a container that never answers
    if _env("OPENBIS_HUB_START_TIMEOUT") or "start_timeout" not in c.Spawner:
        s.start_timeout = int(_env("OPENBIS_HUB_START_TIMEOUT", "120"))
    if "http_timeout" not in c.Spawner:
        s.http_timeout = 60

    idle = int(_env("OPENBIS_HUB_IDLE_TIMEOUT", "3600"))
    if idle > 0:
        service, role = idle_culler_service(idle)
        _append(c.JupyterHub, "services", service)
        _append(c.JupyterHub, "load_roles", role)

    if check:
        ok, line = check_docker(image, swarm=swarm)
        # the hub's own logger is not set up yet while the config loads
        print(line, file=sys.stderr, flush=True)
