"""The deployment's settings: one name, one default and one help string each.

A site configures openbis-hub with environment variables (``.env`` for docker
compose, ``hub.extraEnv`` on Kubernetes). :meth:`Settings.from_environ` reads
them once; :func:`openbis_hub.deployment.configure` turns the result into the
hub's configuration, including the launch service's, so no other part of the
project reads these variables. ``docs/reference/configuration.md`` is
generated from the traits below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from traitlets import Bool, CaselessStrEnum, Float, HasTraits, Integer, List, TraitError, Unicode, default, validate

from ..urls import check_openbis_url, origin_of

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting is missing or has a value that cannot work; the message says which and what to do."""


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


class Settings(HasTraits):
    """Everything site-specific about an openbis-hub deployment.

    Each trait is tagged with the environment variable it is read from.
    """

    # --- openBIS ----------------------------------------------------------------
    openbis_url = Unicode(
        help="The openBIS server, e.g. ``https://openbis.example.org``. Required.",
    ).tag(env="OPENBIS_URL")

    @validate("openbis_url")
    def _strip_slash(self, proposal):
        return proposal["value"].rstrip("/")

    openbis_ca_bundle = Unicode(
        help="A CA file that signed openBIS's certificate, when it is not in the system's trust store.",
    ).tag(env="OPENBIS_CA_BUNDLE")

    openbis_timeout = Float(
        10,
        help="Seconds to wait for openBIS (the hub's token checks, the launch service's hub calls allow 20 more).",
    ).tag(env="OPENBIS_HUB_OPENBIS_TIMEOUT")

    create_pat = Bool(
        False,
        help="Give notebooks an openBIS personal access token instead of the login session's token (docs/howto/personal-access-tokens.md).",
    ).tag(env="OPENBIS_HUB_CREATE_PAT")

    login_hint = Unicode(
        help="A line on the hub's login page above the form, e.g. the accounts of a trial installation; empty: none.",
    ).tag(env="OPENBIS_HUB_LOGIN_HINT")

    dataset_link_template = Unicode(
        help="Where the link after Save to openBIS points (``{openbis_url}`` and ``{permId}`` filled in); empty: the dataset's page in the ELN served by openBIS.",
    ).tag(env="OPENBIS_HUB_DATASET_LINK")

    # --- who may use the hub --------------------------------------------------------
    admin_users = List(Unicode(), help="openBIS user names that are JupyterHub admins.").tag(
        env="OPENBIS_HUB_ADMIN_USERS"
    )
    allowed_users = List(
        Unicode(), help="If set, only these openBIS users may log in; empty: every valid openBIS user."
    ).tag(env="OPENBIS_HUB_ALLOWED_USERS")
    blocked_users = List(Unicode(), help="openBIS users who may not log in, even with a valid token.").tag(
        env="OPENBIS_HUB_BLOCKED_USERS"
    )

    # --- the ELN and the browser ---------------------------------------------------
    eln_origins = List(
        Unicode(),
        help="Origins of the ELN pages that call the launch service (``https://openbis.example.org``); others get 403. Default: the origin of ``openbis_url``.",
    ).tag(env="OPENBIS_HUB_ELN_ORIGINS")

    @default("eln_origins")
    def _eln_origins(self):
        return [origin_of(self.openbis_url)] if self.openbis_url else []

    frame_ancestors = List(
        Unicode(),
        help="Origins allowed to show the hub and the notebooks in a frame (CSP ``frame-ancestors``). Default: ``eln_origins``.",
    ).tag(env="OPENBIS_HUB_FRAME_ANCESTORS")

    @default("frame_ancestors")
    def _frame_ancestors(self):
        return list(self.eln_origins)

    public_url = Unicode(
        help="The hub's address as browsers see it (``https://jupyter.example.org``), for the links the service returns; empty: relative links.",
    ).tag(env="OPENBIS_HUB_PUBLIC_URL")

    trusted_proxies = List(
        Unicode(),
        help="Addresses of reverse proxies in front of the hub whose ``X-Forwarded-For`` the launch service believes (for its per-client limits). The hub's own proxy on loopback is always trusted.",
    ).tag(env="OPENBIS_HUB_TRUSTED_PROXIES")

    # --- the launch service --------------------------------------------------------
    spawn_timeout = Float(
        120,
        help="Seconds a user's server may take to start: the hub's ``Spawner.start_timeout`` and how long the launch service waits before it answers 504.",
    ).tag(env="OPENBIS_HUB_SPAWN_TIMEOUT")

    overwrite = Bool(
        False,
        help="Replace a notebook of the same name when the ELN sends one; off: a new name (``name 2.ipynb``) is chosen and nothing is overwritten.",
    ).tag(env="OPENBIS_HUB_OVERWRITE")

    max_body_size = Integer(
        16 * 1024 * 1024,
        help="Largest notebook the launch service accepts, in bytes; larger bodies get 413.",
    ).tag(env="OPENBIS_HUB_MAX_BODY_SIZE")

    # --- addresses and state ---------------------------------------------------------
    bind_url = Unicode("http://:8000", help="The public address of the hub's proxy.").tag(env="OPENBIS_HUB_BIND_URL")
    ssl_cert = Unicode(help="Serve https with this certificate (PEM); needs ``ssl_key``.").tag(
        env="OPENBIS_HUB_SSL_CERT"
    )
    ssl_key = Unicode(help="The private key of ``ssl_cert``.").tag(env="OPENBIS_HUB_SSL_KEY")
    state_dir = Unicode(".", help="Where the hub keeps its database and cookie secret.").tag(
        env="OPENBIS_HUB_STATE_DIR"
    )
    hub_port = Integer(8081, help="The hub's internal port (the proxy and users' servers reach it).").tag(
        env="OPENBIS_HUB_HUB_PORT"
    )
    proxy_api_port = Integer(8001, help="The proxy's API port, on loopback.").tag(env="OPENBIS_HUB_PROXY_API_PORT")
    service_port = Integer(10101, help="The launch service's port, on loopback.").tag(env="OPENBIS_HUB_SERVICE_PORT")
    proxy_command = Unicode(
        help="The ``configurable-http-proxy`` command. Default: ``node_modules/.bin`` next to ``jupyterhub_config.py``, else the one on ``PATH``.",
    ).tag(env="OPENBIS_HUB_PROXY_COMMAND")

    # --- single-user servers ------------------------------------------------------------
    spawner = CaselessStrEnum(
        ["docker", "swarm", "local"],
        default_value="docker",
        help="How users' servers run: ``docker`` (a container each), ``swarm`` (a Swarm service each) or ``local`` (processes of the hub's OS user, no isolation: trials on one machine only).",
    ).tag(env="OPENBIS_HUB_SPAWNER")

    allow_local_spawner_on_network = Bool(
        False,
        help="Let the ``local`` spawner (no isolation between users) listen beyond loopback.",
    ).tag(env="OPENBIS_HUB_ALLOW_LOCAL_SPAWNER_ON_NETWORK")

    notebook_image = Unicode(
        "openbis-hub-singleuser:latest",
        help="The single-user image (``docker``, ``swarm``); its JupyterHub major.minor must match the hub's.",
    ).tag(env="OPENBIS_HUB_NOTEBOOK_IMAGE")
    pull_policy = CaselessStrEnum(
        ["never", "ifnotpresent", "always", "skip"],
        default_value="never",
        help="``never``: images are built locally (``docker/build.sh``); ``ifnotpresent`` or ``always`` for sites with a registry.",
    ).tag(env="OPENBIS_HUB_PULL_POLICY")
    docker_network = Unicode("openbis-hub", help="The Docker network the hub and the users' containers share.").tag(
        env="OPENBIS_HUB_DOCKER_NETWORK"
    )
    hub_ip = Unicode("0.0.0.0", help="Where the hub listens inside its container (``docker``, ``swarm``).").tag(
        env="OPENBIS_HUB_HUB_IP"
    )
    hub_connect_ip = Unicode("hub", help="How users' containers reach the hub: its name on the shared network.").tag(
        env="OPENBIS_HUB_HUB_CONNECT_IP"
    )
    notebook_dir = Unicode("/home/jovyan/work", help="Where each user's persistent volume is mounted.").tag(
        env="OPENBIS_HUB_NOTEBOOK_DIR"
    )
    volume_prefix = Unicode("openbis-hub-user", help="Users' volumes are named ``<prefix>-<escaped user name>``.").tag(
        env="OPENBIS_HUB_VOLUME_PREFIX"
    )
    container_prefix = Unicode("jupyter", help="Users' containers are named ``<prefix>-<escaped user name>``.").tag(
        env="OPENBIS_HUB_CONTAINER_PREFIX"
    )
    mem_limit = Unicode(help="Memory limit of each user's container, e.g. ``2G``; empty: none.").tag(
        env="OPENBIS_HUB_MEM_LIMIT"
    )
    cpu_limit = Float(0, help="CPU limit of each user's container, e.g. ``1.5``; 0: none.").tag(
        env="OPENBIS_HUB_CPU_LIMIT"
    )
    idle_timeout = Integer(
        3600, help="Seconds of inactivity before the idle culler stops a user's server; 0 turns the culler off."
    ).tag(env="OPENBIS_HUB_IDLE_TIMEOUT")
    server_cpu_shares = Integer(
        256,
        help="CPU weight of each user's container (``docker``) against the hub container's 1024 while the CPU is contended: with many servers starting at once the hub, its proxy and the launch service keep answering the ELN; 0: Docker's default (1024, the same as the hub).",
    ).tag(env="OPENBIS_HUB_SERVER_CPU_SHARES")
    concurrent_spawn_limit = Integer(
        4,
        help="How many users' servers may be starting at the same time (``docker``, ``swarm``; the hub's ``concurrent_spawn_limit``); 0: no limit. Further clicks wait in the launch service's queue, first come first served, and are started as others finish (docs/deploy.md, capacity and limits).",
    ).tag(env="OPENBIS_HUB_CONCURRENT_SPAWN_LIMIT")
    stop_servers_on_exit = Bool(
        False,
        help="Stop every user's server when the hub stops (``docker``, ``swarm``). Off: users' containers keep running while the hub restarts or is upgraded, and the hub takes them over again when it is back.",
    ).tag(env="OPENBIS_HUB_STOP_SERVERS_ON_EXIT")
    ca_bundle_host = Unicode(
        help="The Docker host's path of ``openbis_ca_bundle``, mounted into users' containers. Default: found from the hub container's own mounts.",
    ).tag(env="OPENBIS_HUB_CA_BUNDLE_HOST")
    swarm_endpoint_mode = CaselessStrEnum(
        ["dnsrr", "vip"],
        default_value="dnsrr",
        help="How the hub reaches a user's Swarm service: ``dnsrr`` (its one task by DNS) or ``vip``.",
    ).tag(env="OPENBIS_HUB_SWARM_ENDPOINT_MODE")

    # ------------------------------------------------------------------------------
    @classmethod
    def environment_names(cls) -> dict[str, str]:
        """Trait name -> environment variable."""
        return {name: trait.metadata["env"] for name, trait in cls.class_traits().items() if "env" in trait.metadata}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings given by ``environ`` (default ``os.environ``); unset or empty variables keep their default."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, var in cls.environment_names().items():
            raw = environ.get(var, "").strip()
            if raw:
                values[name] = cls._parse(name, var, raw)
        try:
            return cls(**values)
        except TraitError as e:
            raise SettingsError(str(e).splitlines()[0]) from None

    @classmethod
    def _parse(cls, name: str, var: str, raw: str):
        trait = cls.class_traits()[name]
        try:
            if isinstance(trait, Bool):
                if raw.lower() not in TRUE | FALSE:
                    raise ValueError
                return raw.lower() in TRUE
            if isinstance(trait, Integer):
                return int(raw)
            if isinstance(trait, Float):
                return float(raw)
            if isinstance(trait, List):
                return _words(raw)
        except ValueError:
            kind = {Bool: "true or false", Integer: "a whole number", Float: "a number"}[type(trait)]
            raise SettingsError(f"{var} must be {kind}, not {raw!r}") from None
        return raw

    def check(self) -> None:
        """Refuse settings that cannot work, with one sentence saying what to do."""
        if not self.openbis_url:
            raise SettingsError(
                "OPENBIS_URL is not set; set it to your openBIS server, e.g. https://openbis.example.org"
            )
        try:
            check_openbis_url(self.openbis_url, "OPENBIS_URL")
        except ValueError as e:
            raise SettingsError(str(e)) from None
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise SettingsError("OPENBIS_HUB_SSL_CERT and OPENBIS_HUB_SSL_KEY go together: set both or neither")
        if self.spawn_timeout <= 0:
            raise SettingsError("OPENBIS_HUB_SPAWN_TIMEOUT must be more than 0 seconds")

    @property
    def https(self) -> bool:
        return bool(self.ssl_cert)
