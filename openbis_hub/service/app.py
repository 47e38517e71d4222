"""The launch service: a JupyterHub-managed service at ``/services/openbis/``.

It is the drop-in for the old ELN-Jupyter webservice: the ELN posts a notebook
with the user's openBIS token; the service makes sure the hub user exists and
their server runs, and writes the notebook through the contents API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from urllib.parse import urlsplit

from tornado import httpserver, web
from traitlets import Bool, Float, Integer, List, Unicode, default
from traitlets.config import Application, Config

from .. import redact
from .._version import __version__
from ..urls import origin_of
from . import handlers
from .hub import HubAPI
from .launch import Launcher, RefusedTokens

CONFIG_ENV = "OPENBIS_HUB_SERVICE_CONFIG"
"""The environment variable that carries this service's config (JSON) from the hub's deployment settings."""


class OpenBISService(Application):
    """The launch service the openBIS ELN and other applications call.

    It holds the hub token of the service ``openbis`` and uses it for the
    Hub API only; users' servers get tokens of their own users (see
    ``user_token_lifetime``).  It never talks to openBIS itself: the hub
    checks each new token once and keeps it in the user's auth_state.
    """

    name = "openbis-hub-service"
    description = "Launch notebooks for the openBIS ELN through JupyterHub."
    version = __version__

    aliases = {
        "openbis-url": "OpenBISService.openbis_url",
        "port": "OpenBISService.port",
        "spawn-timeout": "OpenBISService.spawn_timeout",
        "log-level": "Application.log_level",
    }

    openbis_url = Unicode(
        config=True,
        help="""
        URL of the openBIS server, whose origin is the default of
        ``eln_origins``.  Tokens are checked by the hub, not here.
        """,
    )

    openbis_timeout = Float(
        10,
        config=True,
        help="Seconds the hub waits for openBIS; this service allows its Hub API calls 20 seconds more.",
    )

    token_memory_seconds = Float(
        60,
        config=True,
        help="""
        Seconds a token the hub accepted is trusted again without asking,
        so the ELN's second request of a click (and a burst of API calls)
        costs openBIS nothing.  0 asks the hub on every request.
        """,
    )

    refused_token_seconds = Float(
        60,
        config=True,
        help="""
        Seconds a refused token is refused again from memory, and the window
        in which ``refused_token_limit`` refusals from one address make it
        wait (429) without asking openBIS.
        """,
    )

    refused_token_limit = Integer(
        20,
        config=True,
        help="Refused tokens from one client address within ``refused_token_seconds`` before it gets 429.",
    )

    user_token_lifetime = Integer(
        600,
        config=True,
        help="""
        Seconds a token the service mints for a user's server lives.  Each is
        owned by that user and holds only ``access:servers!user=<name>``, so a
        user who captures it in their own server gains nothing.  It is reused
        until a fifth of its lifetime is left.
        """,
    )

    trusted_proxies = List(
        Unicode(),
        config=True,
        help="""
        Addresses of proxies whose ``X-Forwarded-For`` entries are believed:
        the hub's own proxy (loopback) and, behind a TLS-terminating reverse
        proxy, that proxy's address.  The client is the right-most address
        that is not one of them; from any other peer the headers are
        ignored, so a client cannot pose as another address to escape
        ``refused_token_limit``.  Loopback is always trusted; this adds to it.
        """,
    )

    body_timeout = Float(
        60,
        config=True,
        help="Seconds a client may take to send a request body before the connection is closed.",
    )

    eln_origins = List(
        Unicode(),
        config=True,
        help="""
        Origins (``https://host[:port]``) of the openBIS ELN pages allowed to
        call this service from a browser (CORS); any other ``Origin`` gets
        403 before any work.  Default: the origin of ``openbis_url``.
        """,
    )

    @default("eln_origins")
    def _eln_origins_default(self):
        return [o for o in [origin_of(self.openbis_url)] if o]

    max_body_size = Integer(
        16 * 1024 * 1024,
        config=True,
        help="Largest notebook accepted, in bytes; larger bodies are answered 413.",
    )

    overwrite = Bool(
        False,
        config=True,
        help="""
        True: a notebook written under an existing name replaces the file
        (as the old ELN-Jupyter webservice did).  Default False: the new
        notebook gets a free name (``name 2.ipynb``, ...) and nothing is
        ever overwritten.
        """,
    )

    spawn_timeout = Float(
        120,
        config=True,
        help="""
        Seconds to wait for a user's server to start before answering 504
        (the deployment sets the hub's ``Spawner.start_timeout`` from the same
        setting).
        """,
    )

    public_url = Unicode(
        config=True,
        help="""
        Public URL of the hub (``https://hub.example.org``), used in the
        ``link`` of answers.  Empty: taken from the request.
        """,
    )

    proxy_url = Unicode(
        "http://127.0.0.1:8000",
        config=True,
        help="""
        Where this service reaches ``/user/<name>/`` (the hub's proxy, seen
        from the service).
        """,
    )

    hub_api_url = Unicode(config=True, help="The Hub API URL. Defaults to $JUPYTERHUB_API_URL (set by the hub).")

    @default("hub_api_url")
    def _hub_api_url_default(self):
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    api_token = Unicode(config=True, help="This service's Hub API token. Defaults to $JUPYTERHUB_API_TOKEN.")

    @default("api_token")
    def _api_token_default(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    service_prefix = Unicode(config=True, help="URL prefix of the service. Defaults to $JUPYTERHUB_SERVICE_PREFIX.")

    @default("service_prefix")
    def _service_prefix_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/openbis/")

    port = Integer(config=True, help="Port to listen on. Defaults to the port of $JUPYTERHUB_SERVICE_URL.")

    @default("port")
    def _port_default(self):
        return urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")).port or 10101

    ip = Unicode("127.0.0.1", config=True, help="Address to listen on (the proxy forwards to it).")

    def initialize(self, argv=None):
        """Config from the hub (``$OPENBIS_HUB_SERVICE_CONFIG``, set by
        :func:`openbis_hub.deployment.hub.service`), then the command line."""
        if os.environ.get(CONFIG_ENV):
            self.update_config(Config(json.loads(os.environ[CONFIG_ENV])))
        super().initialize(argv)

    def make_app(self, transport=None) -> web.Application:
        """The tornado application; ``transport`` (an httpx transport) replaces the network in tests."""
        self.hub = HubAPI(
            self.hub_api_url,
            self.api_token,
            self.proxy_url,
            timeout=self.openbis_timeout + 20,
            user_token_lifetime=self.user_token_lifetime,
            transport=transport,
        )
        launcher = Launcher(
            self.hub,
            spawn_timeout=self.spawn_timeout,
            overwrite=self.overwrite,
            token_memory_seconds=self.token_memory_seconds,
            refused=RefusedTokens(ttl=self.refused_token_seconds, limit=self.refused_token_limit),
        )
        prefix = self.service_prefix.rstrip("/")
        routes = [
            (prefix + r"/api/health", handlers.HealthHandler),
            (prefix + r"/api/openapi.json", handlers.OpenAPIHandler),
            (prefix + r"/api/notebooks", handlers.CreateNotebookHandler),
            (prefix + r"/api/notebooks/(.+)", handlers.NotebookHandler),
            (prefix + r"/api/sessions", handlers.SessionsHandler),
            (prefix + r"(/.*)?", handlers.ELNHandler),  # the ELN: any path under the prefix
        ]
        return web.Application(
            routes,
            launcher=launcher,
            eln_origins=set(self.eln_origins),
            trusted_proxies={"127.0.0.1", "::1", *self.trusted_proxies},
            max_body_size=self.max_body_size,
            public_url=self.public_url,
            service_prefix=self.service_prefix,
            log_function=self._log_request,
        )

    def make_server(self, app: web.Application) -> httpserver.HTTPServer:
        """The HTTP server for ``app``: slow bodies time out, client addresses come from trusted proxies only."""
        # xheaders off: the client's address comes from the proxy's headers only
        # when the peer is a trusted proxy (handlers.BaseHandler.client_address)
        return httpserver.HTTPServer(
            app, xheaders=False, max_body_size=self.max_body_size + (1 << 20), body_timeout=self.body_timeout
        )

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING
        self.log.log(level, "%d %s %.1fms", status, handler.request_summary(), 1000 * handler.request.request_time())

    async def serve(self) -> None:
        if not self.openbis_url:
            self.log.critical("OpenBISService.openbis_url is not set (the deployment sets it from OPENBIS_URL).")
            raise SystemExit(1)
        server = self.make_server(self.make_app())
        server.listen(self.port, self.ip)
        self.log.info("openBIS launch service at http://%s:%s%s", self.ip, self.port, self.service_prefix)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await self.hub.aclose()

    def start(self):
        asyncio.run(self.serve())


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    app = OpenBISService.instance()
    app.initialize(argv)
    redact.install()  # no token in any log line, whoever logs it
    redact.install(app.log)
    app.start()
