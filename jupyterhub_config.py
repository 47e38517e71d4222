"""JupyterHub configuration for openbis-hub.

Everything site-specific comes from the environment, so the same file serves
the docker compose deployment, the demo and the tests:

OPENBIS_URL               openBIS server, e.g. https://openbis.example.org (required)
OPENBIS_CA_BUNDLE         CA file that signed openBIS's certificate (optional)
JUPYTERHUB_CRYPT_KEY      key for the encrypted auth_state (required; `openssl rand -hex 32`)
OPENBIS_HUB_SPAWNER       docker (default) | swarm | local (single-user servers as local processes)
OPENBIS_HUB_ELN_ORIGINS   origins of the ELN pages that call the service (default: OPENBIS_URL's)
OPENBIS_HUB_FRAME_ANCESTORS  origins allowed to embed the hub and notebooks in a frame (default: as above)
OPENBIS_HUB_BIND_URL      public address of the proxy (default http://:8000)
OPENBIS_HUB_SSL_CERT / OPENBIS_HUB_SSL_KEY  serve https with this certificate
OPENBIS_HUB_STATE_DIR     database and cookie secret (default: the current directory)
OPENBIS_HUB_HUB_PORT, OPENBIS_HUB_PROXY_API_PORT, OPENBIS_HUB_SERVICE_PORT  internal ports
OPENBIS_HUB_CREATE_PAT    "true": give notebooks an openBIS personal access token
OPENBIS_HUB_OPENBIS_TIMEOUT  seconds to wait for openBIS (default 10)
OPENBIS_HUB_SPAWN_TIMEOUT    seconds to wait for a user's server to start (default 120)
OPENBIS_HUB_TRUSTED_PROXIES  addresses of a reverse proxy in front of the hub, whose X-Forwarded-For is believed
OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK  "true": let the local spawner (no isolation) listen beyond loopback
"""

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

c = get_config()  # noqa: F821 (provided by JupyterHub)

env = os.environ


def fail(message):
    """Stop the hub with one clear line."""
    print(f"openbis-hub: {message}", file=sys.stderr)
    sys.exit(1)


from openbis_hub.urls import check_openbis_url, origin_of  # noqa: E402

openbis_url = env.get("OPENBIS_URL", "").rstrip("/")
if not openbis_url:
    fail("OPENBIS_URL is not set; set it to your openBIS server, e.g. https://openbis.example.org")
try:
    check_openbis_url(openbis_url, "OPENBIS_URL")
except ValueError as e:
    fail(str(e))
if not env.get("JUPYTERHUB_CRYPT_KEY"):
    fail("JUPYTERHUB_CRYPT_KEY is not set; it encrypts the stored openBIS tokens. Make one with: openssl rand -hex 32")

openbis_origin = origin_of(openbis_url)
eln_origins = env.get("OPENBIS_HUB_ELN_ORIGINS", openbis_origin).replace(",", " ").split()
frame_ancestors = env.get("OPENBIS_HUB_FRAME_ANCESTORS", " ".join(eln_origins)).replace(",", " ").split()
ca_bundle = env.get("OPENBIS_CA_BUNDLE", "")
state_dir = Path(env.get("OPENBIS_HUB_STATE_DIR", ".")).resolve()
state_dir.mkdir(parents=True, exist_ok=True)
hub_port = int(env.get("OPENBIS_HUB_HUB_PORT", 8081))
service_port = int(env.get("OPENBIS_HUB_SERVICE_PORT", 10101))
spawner = env.get("OPENBIS_HUB_SPAWNER", "docker")

# --- the hub -------------------------------------------------------------------

c.JupyterHub.bind_url = env.get("OPENBIS_HUB_BIND_URL", "http://:8000")
c.JupyterHub.hub_port = hub_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env.get('OPENBIS_HUB_PROXY_API_PORT', 8001))}"
c.JupyterHub.db_url = f"sqlite:///{state_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")
https = bool(env.get("OPENBIS_HUB_SSL_CERT"))
if https:
    c.JupyterHub.ssl_cert = env["OPENBIS_HUB_SSL_CERT"]
    c.JupyterHub.ssl_key = env["OPENBIS_HUB_SSL_KEY"]

# the proxy: the project's own npm install first, then whatever is on PATH
local_proxy = Path(__file__).resolve().parent / "node_modules" / ".bin" / "configurable-http-proxy"
if local_proxy.exists():
    proxy_command = str(local_proxy)
elif shutil.which("configurable-http-proxy"):
    proxy_command = "configurable-http-proxy"
else:
    fail("configurable-http-proxy not found; run `npm install` in the openbis-hub folder")
# the proxy logs the URLs it could not route (the ELN's carry ?token=): its output
# goes through a filter that removes tokens, as the hub's own log does (logging_config)
c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "openbis_hub.redact", "--", proxy_command]
c.JupyterHub.logging_config = {
    "filters": {"redact": {"()": "openbis_hub.redact.RedactingFilter"}},
    "handlers": {"console": {"filters": ["redact"]}},
}

csp = "frame-ancestors 'self' " + " ".join(frame_ancestors)
c.JupyterHub.tornado_settings = {
    "headers": {"Content-Security-Policy": csp},
    # answer POST /users/<name>/server at once; the service follows the progress stream
    "slow_spawn_timeout": 0,
}
if https:
    # cookies that work when the ELN (another site) frames the hub
    c.JupyterHub.tornado_settings["cookie_options"] = {"samesite": "None", "secure": True}

# --- login with openBIS ----------------------------------------------------------

c.JupyterHub.authenticator_class = "openbis"
# the login form also takes an openBIS token
c.JupyterHub.template_paths = [str(Path(__import__("openbis_hub").__file__).parent / "templates")]
c.OpenBISAuthenticator.openbis_url = openbis_url
c.OpenBISAuthenticator.openbis_ca_bundle = ca_bundle
c.OpenBISAuthenticator.openbis_timeout = float(env.get("OPENBIS_HUB_OPENBIS_TIMEOUT", 10))
c.OpenBISAuthenticator.create_personal_access_token = env.get("OPENBIS_HUB_CREATE_PAT", "").lower() == "true"
c.Authenticator.admin_users = set(env.get("OPENBIS_HUB_ADMIN_USERS", "").replace(",", " ").split())
if env.get("OPENBIS_HUB_ALLOWED_USERS"):
    c.Authenticator.allowed_users = set(env["OPENBIS_HUB_ALLOWED_USERS"].replace(",", " ").split())
c.Authenticator.blocked_users = set(env.get("OPENBIS_HUB_BLOCKED_USERS", "").replace(",", " ").split())

# --- the launch service the ELN talks to ------------------------------------------

public_url = env.get("OPENBIS_HUB_PUBLIC_URL", "")
bind = urlsplit(c.JupyterHub.bind_url)
proxy_url = f"{'https' if https else 'http'}://127.0.0.1:{bind.port or 8000}"
c.JupyterHub.services = [
    {
        "name": "openbis",
        "url": f"http://127.0.0.1:{service_port}",
        "command": [sys.executable, "-m", "openbis_hub.service"],
        "environment": {
            "OPENBIS_URL": openbis_url,
            "OPENBIS_CA_BUNDLE": ca_bundle,
            "OPENBIS_HUB_ELN_ORIGINS": " ".join(eln_origins),
            "OPENBIS_HUB_PROXY_URL": proxy_url,
            "OPENBIS_HUB_PUBLIC_URL": public_url,
            "OPENBIS_HUB_OVERWRITE": env.get("OPENBIS_HUB_OVERWRITE", "false"),
            "OPENBIS_HUB_SPAWN_TIMEOUT": env.get("OPENBIS_HUB_SPAWN_TIMEOUT", "120"),
            "OPENBIS_HUB_OPENBIS_TIMEOUT": env.get("OPENBIS_HUB_OPENBIS_TIMEOUT", "10"),
            "OPENBIS_HUB_TRUSTED_PROXIES": env.get("OPENBIS_HUB_TRUSTED_PROXIES", ""),
            "OPENBIS_HUB_MAX_BODY_SIZE": env.get("OPENBIS_HUB_MAX_BODY_SIZE", str(16 * 1024 * 1024)),
            "PATH": env.get("PATH", ""),
        },
        "display": False,
    }
]
# The launch service's scopes, each for one reason (docs/security.md):
#   custom:openbis-hub:sync  log users in with their openBIS token (POST /hub/api/openbis/users):
#                            the hub checks the token, creates the user, keeps the token in auth_state
#   read:servers             see whether a user's server runs, follow its start
#   start:servers            start a user's server (JupyterHub 5: "servers", which also stops them)
#   tokens                   mint short-lived tokens owned by a user with access:servers!user=<name>,
#                            the only credential that ever goes to that user's server
# Not admin:users, not admin:auth_state, not access:servers: the service's own token never
# reaches a user's server, and it cannot read anyone's openBIS token.
import jupyterhub  # noqa: E402

from openbis_hub.scopes import SYNC_SCOPE  # noqa: E402

start_scope = "start:servers" if jupyterhub.version_info >= (6,) else "servers"
c.JupyterHub.custom_scopes = {
    SYNC_SCOPE: {
        "description": "Log an openBIS user in with their openBIS token (creates the hub user, stores the token).",
    },
}
c.JupyterHub.load_roles = [
    {
        "name": "openbis-launcher",
        "scopes": [SYNC_SCOPE, "read:servers", start_scope, "tokens"],
        "services": ["openbis"],
    },
    {
        # users (and so their servers) may read their own auth_state: their openBIS token
        "name": "user",
        "scopes": ["self", "admin:auth_state!user"],
    },
    {
        # a user's server may read its owner's fresh openBIS token from auth_state
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", "admin:auth_state!user"],
    },
]

# --- single-user servers ------------------------------------------------------------

c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = max(1, int(float(env.get("OPENBIS_HUB_SPAWN_TIMEOUT", 120))))
c.Spawner.http_timeout = 60
c.Spawner.environment = {
    "OPENBIS_HUB_FRAME_ANCESTORS": " ".join(frame_ancestors),
}

if spawner == "local":
    # development and the demo: servers are local processes, each user gets
    # a home (and notebook) directory of their own under the state directory.
    # No isolation: every server runs as the hub's OS user and can read the
    # hub's files and every other user's home.
    print(
        "openbis-hub: WARNING: OPENBIS_HUB_SPAWNER=local runs every user's server as this OS user,"
        " with no isolation between users: for a trial on one machine only (docs/security.md).",
        file=sys.stderr,
    )
    if (bind.hostname or "") not in {"127.0.0.1", "localhost", "::1"} and env.get(
        "OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK", ""
    ).lower() != "true":
        fail(
            f"OPENBIS_HUB_SPAWNER=local refuses to listen on {c.JupyterHub.bind_url}: users would share one OS"
            " account. Bind to 127.0.0.1, use the docker spawner, or set"
            " OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK=true if you accept that."
        )
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(state_dir / "users" / "{username}")
    c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
    if ca_bundle:
        c.Spawner.environment["OPENBIS_CA_BUNDLE"] = ca_bundle
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]
elif spawner in {"docker", "swarm"}:
    from openbis_hub.spawners import configure_docker_spawner

    configure_docker_spawner(c, swarm=spawner == "swarm")
else:
    fail(f"OPENBIS_HUB_SPAWNER must be docker, swarm or local, not {spawner!r}")
