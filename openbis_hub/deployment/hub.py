"""The hub's configuration, built from :class:`~.settings.Settings`.

One function per concern, each returning plain data, so ``jupyterhub_config.py``,
the demo and the Kubernetes values all get the same service, roles, scopes and
headers. :func:`configure` applies them to the hub's config object.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jupyterhub

from ..scopes import SYNC_SCOPE
from ..service.app import CONFIG_ENV as SERVICE_CONFIG_ENV
from .settings import Settings, SettingsError

SERVICE_NAME = "openbis"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def custom_scopes() -> dict:
    """The scope the launch service needs beyond JupyterHub's own."""
    return {
        SYNC_SCOPE: {
            "description": "Log an openBIS user in with their openBIS token (creates the hub user, stores the token).",
        },
    }


def roles(jupyterhub_version: tuple = jupyterhub.version_info) -> list[dict]:
    """The launch service's role, and what users and their servers may read.

    The launch service's scopes, each for one reason (docs/security.md):

    ``custom:openbis-hub:sync``
        log users in with their openBIS token (``POST /hub/api/openbis/users``): the hub
        checks the token, creates the user, keeps the token in auth_state;
    ``read:servers``
        see whether a user's server runs, follow its start;
    ``start:servers``
        start a user's server (JupyterHub 5: ``servers``, which also stops them);
    ``tokens``
        mint short-lived tokens owned by a user with ``access:servers!user=<name>``, the
        only credential that ever goes to that user's server.

    Not ``admin:users``, not ``admin:auth_state``, not ``access:servers``: the service's own
    token never reaches a user's server, and it cannot read anyone's openBIS token.
    """
    start_scope = "start:servers" if jupyterhub_version >= (6,) else "servers"
    return [
        {
            "name": "openbis-launcher",
            "description": "log users in with their openBIS token, start their servers, mint per-user server tokens",
            "scopes": [SYNC_SCOPE, "read:servers", start_scope, "tokens"],
            "services": [SERVICE_NAME],
        },
        {
            "name": "user",
            "description": "users (and so their servers) may read their own auth_state: their openBIS token",
            "scopes": ["self", "admin:auth_state!user"],
        },
        {
            "name": "server",
            "description": "a user's server may read its owner's fresh openBIS token from auth_state",
            "scopes": ["users:activity!user", "access:servers!server", "admin:auth_state!user"],
        },
    ]


def service_config(settings: Settings, proxy_url: str, listen_ip: str = "127.0.0.1") -> dict:
    """The launch service's traitlets config (``OpenBISService``): what it needs, nothing else."""
    return {
        "OpenBISService": {
            "ip": listen_ip,
            "openbis_url": settings.openbis_url,
            "openbis_timeout": settings.openbis_timeout,
            "eln_origins": list(settings.eln_origins),
            "trusted_proxies": list(settings.trusted_proxies),
            "public_url": settings.public_url,
            "proxy_url": proxy_url,
            "overwrite": settings.overwrite,
            "spawn_timeout": settings.spawn_timeout,
            "max_body_size": settings.max_body_size,
        }
    }


def service(
    settings: Settings, *, url: str | None = None, proxy_url: str | None = None, listen_ip: str = "127.0.0.1"
) -> dict:
    """The launch service, as an entry of ``JupyterHub.services`` (the hub starts and restarts it)."""
    url = url or f"http://127.0.0.1:{settings.service_port}"
    proxy_url = proxy_url or local_proxy_url(settings)
    return {
        "name": SERVICE_NAME,
        "url": url,
        "command": [sys.executable, "-m", "openbis_hub.service"],
        "environment": {
            SERVICE_CONFIG_ENV: json.dumps(service_config(settings, proxy_url, listen_ip), sort_keys=True),
            "PATH": os.environ.get("PATH", ""),
        },
        "display": False,
    }


def local_proxy_url(settings: Settings) -> str:
    """Where a process next to the hub reaches the proxy."""
    bind = urlsplit(settings.bind_url)
    return f"{'https' if settings.https else 'http'}://127.0.0.1:{bind.port or 8000}"


def tornado_settings(settings: Settings) -> dict:
    """Security headers and cookies: the ELN may frame the hub, nobody else."""
    result = {
        "headers": {"Content-Security-Policy": "frame-ancestors 'self' " + " ".join(settings.frame_ancestors)},
        # answer POST /users/<name>/server at once; the service follows the progress stream
        "slow_spawn_timeout": 0,
    }
    if settings.https:
        # cookies that work when the ELN (another site) frames the hub; tornado wants lower-case keys
        result["cookie_options"] = {"samesite": "None", "secure": True}
    return result


def logging_config() -> dict:
    """No token in the hub's log, whoever logs it (openbis_hub.redact)."""
    return {
        "filters": {"redact": {"()": "openbis_hub.redact.RedactingFilter"}},
        "handlers": {"console": {"filters": ["redact"]}},
    }


def find_proxy(settings: Settings, search: list[Path]) -> str:
    """The ``configurable-http-proxy`` command: the setting, an npm install in ``search``, or ``PATH``."""
    if settings.proxy_command:
        return settings.proxy_command
    for folder in search:
        candidate = Path(folder) / "node_modules" / ".bin" / "configurable-http-proxy"
        if candidate.exists():
            return str(candidate)
    if shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy"
    raise SettingsError("configurable-http-proxy not found; run `npm install` in the openbis-hub folder")


def configure_authenticator(c, settings: Settings) -> None:
    c.JupyterHub.authenticator_class = "openbis"
    # the login form also takes an openBIS token; the spawn page names the notebook
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.OpenBISAuthenticator.openbis_url = settings.openbis_url
    c.OpenBISAuthenticator.openbis_ca_bundle = settings.openbis_ca_bundle
    c.OpenBISAuthenticator.openbis_timeout = settings.openbis_timeout
    c.OpenBISAuthenticator.create_personal_access_token = settings.create_pat
    c.OpenBISAuthenticator.login_hint = settings.login_hint
    c.OpenBISAuthenticator.dataset_link_template = settings.dataset_link_template
    c.OpenBISAuthenticator.pending_dir = str(Path(settings.state_dir).resolve() / "pending")
    c.Authenticator.admin_users = set(settings.admin_users)
    if settings.allowed_users:
        c.Authenticator.allowed_users = set(settings.allowed_users)
    c.Authenticator.blocked_users = set(settings.blocked_users)


def append_named(section, key: str, item: dict) -> None:
    """Add ``item`` to a list of named entries (services, roles), replacing one of the same name."""
    existing = section[key] if key in section else []
    section[key] = [x for x in list(existing) if x.get("name") != item["name"]] + [item]


def merge(section, key: str, values: dict) -> None:
    """Merge ``values`` into a dict config value, whether or not it is set yet."""
    section[key] = {**(section[key] if key in section else {}), **values}


def configure_service(c, settings: Settings, **where) -> None:
    """The launch service, its scopes and roles, the headers: everything but addresses and spawner.

    Adds to what is configured already (the Helm chart's own services and roles).
    """
    merge(c.JupyterHub, "custom_scopes", custom_scopes())
    for role in roles():
        append_named(c.JupyterHub, "load_roles", role)
    append_named(c.JupyterHub, "services", service(settings, **where))
    merge(c.JupyterHub, "tornado_settings", tornado_settings(settings))
    c.JupyterHub.logging_config = logging_config()


def configure_local_spawner(c, settings: Settings) -> None:
    """Users' servers as local processes: development and the demo, no isolation."""
    bind = urlsplit(settings.bind_url)
    print(
        "openbis-hub: WARNING: OPENBIS_HUB_SPAWNER=local runs every user's server as this OS user,"
        " with no isolation between users: for a trial on one machine only (docs/security.md).",
        file=sys.stderr,
    )
    if (bind.hostname or "") not in LOOPBACK and not settings.allow_local_spawner_on_network:
        raise SettingsError(
            f"OPENBIS_HUB_SPAWNER=local refuses to listen on {settings.bind_url}: users would share one OS"
            " account. Bind to 127.0.0.1, use the docker spawner, or set"
            " OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK=true if you accept that."
        )
    state_dir = Path(settings.state_dir).resolve()
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    # each user gets a home (and notebook) directory of their own under the state directory
    c.SimpleLocalProcessSpawner.home_dir_template = str(state_dir / "users" / "{username}")
    c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
    if settings.openbis_ca_bundle:
        c.Spawner.environment["OPENBIS_CA_BUNDLE"] = settings.openbis_ca_bundle
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]


def configure(c, settings: Settings, *, config_dir: Path | None = None) -> None:
    """The whole hub: addresses, login with openBIS, the launch service, the spawner.

    ``config_dir`` is where ``jupyterhub_config.py`` lives; an ``npm install`` there
    provides the proxy.
    """
    settings.check()
    state_dir = Path(settings.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = settings.bind_url
    c.JupyterHub.hub_port = settings.hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")
    if settings.https:
        c.JupyterHub.ssl_cert = settings.ssl_cert
        c.JupyterHub.ssl_key = settings.ssl_key
    # the proxy logs the URLs it could not route (the ELN's carry ?token=): its output
    # goes through the same filter as the hub's own log
    proxy = find_proxy(settings, [config_dir] if config_dir else [])
    c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "openbis_hub.redact", "--", proxy]

    configure_authenticator(c, settings)
    configure_service(c, settings)

    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = max(1, int(settings.spawn_timeout))
    c.Spawner.http_timeout = 60
    c.Spawner.environment = {"OPENBIS_HUB_FRAME_ANCESTORS": " ".join(settings.frame_ancestors)}
    if settings.spawner == "local":
        configure_local_spawner(c, settings)
    else:
        from .docker import configure_docker_spawner

        configure_docker_spawner(c, settings, swarm=settings.spawner == "swarm")


def configure_from_environment(c, *, config_dir: Path | None = None, environ=None) -> Settings:
    """:func:`configure` with the settings from the environment; a bad setting stops the hub with one line."""
    try:
        settings = Settings.from_environ(environ)
        settings.check()  # what openBIS is comes first, then the key for its tokens
        if not (environ if environ is not None else os.environ).get("JUPYTERHUB_CRYPT_KEY"):
            raise SettingsError(
                "JUPYTERHUB_CRYPT_KEY is not set; it encrypts the stored openBIS tokens. Make one with: openssl rand -hex 32"
            )
        configure(c, settings, config_dir=config_dir)
    except SettingsError as e:
        print(f"openbis-hub: {e}", file=sys.stderr)
        sys.exit(1)
    return settings
