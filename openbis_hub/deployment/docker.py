"""Each user's notebook server in its own container: Docker or Docker Swarm.

:func:`openbis_hub.deployment.configure` calls :func:`configure_docker_spawner`
when the ``spawner`` setting is ``docker`` or ``swarm``; every value comes from
:class:`~.settings.Settings` (``docs/reference/configuration.md``).

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

from .hub import append_named
from .settings import Settings

DEFAULT_VOLUME_PREFIX = Settings.class_traits()["volume_prefix"].default_value
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


def forget_stale_proxy_pid(c, in_container: bool | None = None) -> None:
    """Remove the proxy's pid file left by the hub's container before it restarted.

    The pid file lives in the hub's state volume, which outlives the
    container; the proxy it names died with the container.  In the restarted
    container the same pid may belong to another process, and the hub would
    take that for its proxy and never start one: nothing would listen on the
    public port.  In a container, the proxy is always the hub's own child, so
    a pid file found while the hub starts is always stale.
    """
    if in_container is None:
        in_container = os.path.exists("/.dockerenv")
    pid_file = c.ConfigurableHTTPProxy.pid_file if "pid_file" in c.ConfigurableHTTPProxy else ""
    if in_container and pid_file:
        try:
            os.unlink(pid_file)
            print(f"openbis-hub: removed the proxy pid file {pid_file} left from before a restart", file=sys.stderr)
        except FileNotFoundError:
            pass
        except OSError as e:
            print(f"openbis-hub: could not remove the stale proxy pid file {pid_file}: {e}", file=sys.stderr)


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


def configure_docker_spawner(c, settings: Settings, swarm: bool = False, check: bool = True) -> None:
    """Configure ``c`` (the hub's config) for per-user Docker containers or Swarm services."""
    spawner_cls = OpenBISSwarmSpawner if swarm else OpenBISDockerSpawner
    c.JupyterHub.spawner_class = spawner_cls
    # the hub listens on all interfaces of its container; user containers
    # reach it by its name on the shared network
    c.JupyterHub.hub_ip = settings.hub_ip
    c.JupyterHub.hub_connect_ip = settings.hub_connect_ip

    s = c[spawner_cls.__name__]
    s.image = settings.notebook_image
    s.pull_policy = settings.pull_policy
    s.network_name = settings.docker_network
    s.use_internal_ip = True
    s.prefix = settings.container_prefix
    # containers go away on stop; the user's files live in the volume
    s.remove = True
    s.notebook_dir = settings.notebook_dir
    if swarm:
        # the hub reaches each service's one task by DNS; a virtual IP would
        # add a load balancer (IPVS) in between that a single task does not need
        # and that some hosts lack
        s.extra_endpoint_spec = {"mode": settings.swarm_endpoint_mode}
    volumes = {f"{settings.volume_prefix}-{{username}}": settings.notebook_dir}

    if settings.openbis_ca_bundle:
        host_ca = settings.ca_bundle_host
        if not host_ca:
            try:
                host_ca = host_path_of(settings.openbis_ca_bundle)
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

    forget_stale_proxy_pid(c)
    # a burst of clicks: at most this many containers start at once, the launch service queues the rest
    c.JupyterHub.concurrent_spawn_limit = settings.concurrent_spawn_limit
    # a hub restart (crash, upgrade, `docker compose restart hub`) leaves the users' servers running:
    # the hub finds them in its database and the proxy gets their routes back
    c.JupyterHub.cleanup_servers = settings.stop_servers_on_exit

    if settings.server_cpu_shares and not swarm:
        # a storm of starting servers must not starve the hub: they get less CPU when it is scarce
        host_config = dict(s.extra_host_config) if "extra_host_config" in s else {}
        host_config["cpu_shares"] = settings.server_cpu_shares
        s.extra_host_config = host_config
    if settings.mem_limit:
        s.mem_limit = settings.mem_limit
    if settings.cpu_limit:
        s.cpu_limit = settings.cpu_limit

    # Spawner.start_timeout comes from the spawn_timeout setting (deployment.hub.configure);
    # a missing image fails at once (pull_image), so it only bounds a container that never answers

    if settings.idle_timeout > 0:
        service, role = idle_culler_service(settings.idle_timeout)
        append_named(c.JupyterHub, "services", service)
        append_named(c.JupyterHub, "load_roles", role)

    if check:
        ok, line = check_docker(settings.notebook_image, swarm=swarm)
        # the hub's own logger is not set up yet while the config loads
        print(line, file=sys.stderr, flush=True)
