"""Product rules behind the fault tests (tests/test_docker_faults.py), fast."""

from __future__ import annotations

from traitlets.config import Config

from openbis_hub.deployment.docker import configure_docker_spawner, forget_stale_proxy_pid
from openbis_hub.deployment.settings import Settings


def test_a_proxy_pid_file_from_before_a_container_restart_is_removed(tmp_path):
    """The hub's volume outlives its container: the pid in the file may now be another process."""
    pid_file = tmp_path / "jupyterhub-proxy.pid"
    pid_file.write_text("10")
    c = Config()
    c.ConfigurableHTTPProxy.pid_file = str(pid_file)
    forget_stale_proxy_pid(c, in_container=False)
    assert pid_file.exists(), "outside a container the proxy may outlive the hub: keep it"
    forget_stale_proxy_pid(c, in_container=True)
    assert not pid_file.exists()
    forget_stale_proxy_pid(c, in_container=True)  # none there: nothing to do


def test_the_hub_leaves_users_servers_running_and_limits_concurrent_spawns_by_default():
    c = Config()
    configure_docker_spawner(c, Settings(), check=False)
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.concurrent_spawn_limit == 4
    assert c.OpenBISDockerSpawner.extra_host_config == {"cpu_shares": 256}
    c = Config()
    settings = Settings.from_environ(
        {"OPENBIS_HUB_STOP_SERVERS_ON_EXIT": "true", "OPENBIS_HUB_CONCURRENT_SPAWN_LIMIT": "3"}
    )
    configure_docker_spawner(c, settings, check=False)
    assert c.JupyterHub.cleanup_servers is True
    assert c.JupyterHub.concurrent_spawn_limit == 3
