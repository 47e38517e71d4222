"""The openBIS side of a user's notebook server: token file, CSP, cookies, refresh."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote

import httpx
from tornado.ioloop import PeriodicCallback
from tornado.routing import Rule
from tornado.web import OutputTransform, RequestHandler
from traitlets import Bool, Float, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from openbis_hub.urls import origin_of

from . import placement, tokens

DEFAULT_LINK_TEMPLATE = (
    "{openbis_url}/openbis/webapp/eln-lims/?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData={permId}"
)


class OpenBISServerExtension(LoggingConfigurable):
    """Connects the notebook server to openBIS.

    Configure as ``c.OpenBISServerExtension.<trait>`` in ``jupyter_server_config.py``.
    The hub's authenticator passes most values through the environment.
    """

    openbis_url = Unicode(
        help="""openBIS base URL, e.g. ``https://openbis.example.org``.

        Default: ``$OPENBIS_URL``.  Kernels read the same variable (pybis'
        ``Openbis()`` without arguments).
        """,
    ).tag(config=True)

    @default("openbis_url")
    def _default_openbis_url(self):
        return os.environ.get("OPENBIS_URL", "")

    @validate("openbis_url")
    def _validate_openbis_url(self, proposal):
        return (proposal["value"] or "").rstrip("/")

    ca_bundle = Unicode(
        help="""CA file to trust for openBIS (e.g. a self-signed test CA).

        Default: ``$OPENBIS_CA_BUNDLE``.  When set, the server exports
        ``REQUESTS_CA_BUNDLE`` pointing at a bundle of the public CAs plus this
        one, so pybis in kernels verifies openBIS with it.
        """,
    ).tag(config=True)

    @default("ca_bundle")
    def _default_ca_bundle(self):
        return os.environ.get("OPENBIS_CA_BUNDLE", "")

    frame_ancestors = List(
        Unicode(),
        help="""Origins allowed to show this server in an iframe (CSP ``frame-ancestors``).

        Default: ``$OPENBIS_HUB_FRAME_ANCESTORS`` (space separated), else the
        origin of the openBIS URL.  The same origins may drive the
        "save" postMessage bridge of the JupyterLab extension.
        """,
    ).tag(config=True)

    @default("frame_ancestors")
    def _default_frame_ancestors(self):
        env = os.environ.get("OPENBIS_HUB_FRAME_ANCESTORS")
        if env is not None:
            return env.split()
        origin = origin_of(self.openbis_url)
        return [origin] if origin else []

    set_csp = Bool(
        True,
        help="Send ``Content-Security-Policy: frame-ancestors 'self' <frame_ancestors>`` on every response.",
    ).tag(config=True)

    iframe_cookies = Bool(
        None,
        allow_none=True,
        help="""Mark cookies ``SameSite=None; Secure`` so they work inside a cross-site iframe.

        ``None`` (default): do it for requests that arrived over https (directly
        or, behind the proxy, ``X-Forwarded-Proto: https``).  ``True``: always
        (the page must be served over https).  ``False``: never.
        """,
    ).tag(config=True)

    hub_user = Unicode(
        help="""The openBIS user this server belongs to (case preserved).

        Default: ``$JUPYTERHUB_USER``.
        """,
    ).tag(config=True)

    @default("hub_user")
    def _default_hub_user(self):
        return os.environ.get("JUPYTERHUB_USER", "")

    token_dir = Unicode(
        help="Directory of pybis' token files. Default: ``~/.pybis``.",
    ).tag(config=True)

    @default("token_dir")
    def _default_token_dir(self):
        return str(tokens.default_token_dir())

    token_refresh_interval = Float(
        60.0,
        help="""Seconds between reading the owner's openBIS token from the hub again (0: never).

        The token lives in the user's auth_state on the hub, the one source of
        truth: the server reads ``auth_state.notebook_token`` from
        ``$JUPYTERHUB_API_URL/users/<owner>`` with its own API token as it starts,
        whenever ``POST openbis/token`` asks it to (the launch service does
        after a click with a new token), and every this many seconds.
        """,
    ).tag(config=True)

    dataset_type = Unicode(
        "ANALYSIS_NOTEBOOK",
        help="Dataset type of saved notebooks, unless the notebook or the request names another.",
    ).tag(config=True)

    export_html = Bool(True, help="Also upload an HTML export (nbconvert) of the notebook.").tag(config=True)

    link_template = Unicode(
        help="""Link to a saved dataset shown to the user; ``{openbis_url}`` and ``{permId}`` are filled in.

        Default: ``$OPENBIS_HUB_DATASET_LINK`` (the hub's
        ``OpenBISAuthenticator.dataset_link_template``), else the dataset's
        page in the ELN served by openBIS.
        """,
    ).tag(config=True)

    @default("link_template")
    def _default_link_template(self):
        return os.environ.get("OPENBIS_HUB_DATASET_LINK") or DEFAULT_LINK_TEMPLATE

    openbis_timeout = Float(10.0, help="Seconds to wait for openBIS when checking tokens.").tag(config=True)

    # --- runtime ---------------------------------------------------------

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client = None
        self._refresher: PeriodicCallback | None = None
        self._last_hub_token: str | None = None
        self._refreshing = None
        self.root_dir: str = ""
        # notebook paths the ELN asked for -> where a handed-over notebook was placed instead
        self.redirects: dict[str, str] = {}
        # notebook paths whose page was asked for before they were there -> when the hub was last asked
        self.looked_for: dict[str, float] = {}
        from .downloads import Downloads

        self.downloads = Downloads()  # datasets being downloaded into the workspace

    @property
    def csp(self) -> str:
        return "frame-ancestors " + " ".join(["'self'", *self.frame_ancestors])

    def dataset_link(self, perm_id: str) -> str:
        return self.link_template.format(openbis_url=self.openbis_url, permId=perm_id)

    @property
    def verify_ca(self) -> str | None:
        return self.ca_bundle or None

    def openbis_client(self):
        if self._client is None:
            from openbis_hub.openbis import OpenBISClient

            self._client = OpenBISClient(url=self.openbis_url, ca_bundle=self.verify_ca, timeout=self.openbis_timeout)
        return self._client

    def current_token(self) -> str | None:
        """The token pybis in kernels uses now (the token file)."""
        if not self.openbis_url:
            return None
        return tokens.read_token_file(self.openbis_url, self.token_dir)

    def token_written_at(self) -> float | None:
        """When the token file was last written (a renewal), as a Unix time; None without one."""
        if not self.openbis_url:
            return None
        try:
            return tokens.token_path(self.openbis_url, self.token_dir).stat().st_mtime
        except (OSError, ValueError):
            return None

    def write_token(self, token: str) -> bool:
        """Store ``token`` for pybis; False when it was already there."""
        if tokens.read_token_file(self.openbis_url, self.token_dir) == token:
            return False
        path = tokens.write_token_file(self.openbis_url, token, self.token_dir)
        self.log.info("openBIS token for %s written to %s", tokens.openbis_hostname(self.openbis_url), path)
        return True

    def setup(self, serverapp) -> None:
        """Called once when the server loads the extension."""
        if not self.openbis_url:
            self.log.warning("openbis-hub: OPENBIS_URL is not set; pybis in kernels will need a URL")
        self.root_dir = os.path.abspath(os.path.expanduser(serverapp.root_dir))
        base_url = serverapp.web_app.settings.get("base_url", "/")
        # before any other route: a notebook URL whose file was placed under another name
        # (tornado's public Rule/Matcher API; extensions' own handlers come after the server's)
        serverapp.web_app.default_router.rules.insert(
            0,
            Rule(
                placement.RedirectedNotebook(base_url, self.redirects),
                placement.RedirectHandler,
                {"redirects": self.redirects},
            ),
        )
        if self._hub_api():
            # a notebook's page asked for before the service told this server to take it (a race at start)
            serverapp.web_app.default_router.rules.insert(
                1,
                Rule(
                    placement.UnplacedNotebook(base_url, self.root_dir, self.looked_for),
                    placement.PlaceWaitingHandler,
                    {"ext": self, "looked_for": self.looked_for},
                ),
            )
            # before the server serves: the notebooks the ELN posted while it was starting
            self.place_pending(self._pending_from(self._ask_hub_now(*self._take_pending_call())))
        if self.openbis_url and self._hub_api():
            # before the server serves: the first kernel finds its token
            self.apply_hub_model(self._hub_model(self._ask_hub_now(*self._owner_model_call())))
        elif self.openbis_url and os.environ.get("OPENBIS_TOKEN"):
            # a server run by hand, without a hub: the token comes from the environment
            try:
                self.write_token(os.environ["OPENBIS_TOKEN"])
            except (OSError, ValueError) as e:
                self.log.error("openbis-hub: could not write the openBIS token file: %s", e)
        if self.ca_bundle:
            self._export_ca_bundle()
        settings = serverapp.web_app.settings
        if self.set_csp:
            settings.setdefault("headers", {})["Content-Security-Policy"] = self.csp
        if self.iframe_cookies:
            settings.setdefault("xsrf_cookie_kwargs", {}).update({"samesite": "None", "secure": True})
        if self.set_csp:
            serverapp.web_app.transforms.append(self._make_transform())
        if self.iframe_cookies is not False:
            _install_cookie_hook(self)
        if self.token_refresh_interval > 0 and self._hub_api():
            self._refresher = PeriodicCallback(self.refresh_token_from_hub, self.token_refresh_interval * 1000)
            serverapp.io_loop.add_callback(self._refresher.start)

    def _export_ca_bundle(self) -> None:
        if not os.path.isfile(self.ca_bundle):
            self.log.error("openbis-hub: OPENBIS_CA_BUNDLE=%s does not exist", self.ca_bundle)
            return
        base = os.environ.get("REQUESTS_CA_BUNDLE") or None
        dest = os.path.join(self.token_dir, "ca-bundle.pem")
        try:
            path = tokens.write_ca_bundle(self.ca_bundle, dest, base_bundle=base)
        except OSError as e:
            self.log.error("openbis-hub: could not write a CA bundle, using %s alone: %s", self.ca_bundle, e)
            path = self.ca_bundle
        # kernels inherit the server's environment
        os.environ["REQUESTS_CA_BUNDLE"] = str(path)
        self.log.info("openbis-hub: kernels trust the openBIS CA via REQUESTS_CA_BUNDLE=%s", path)

    def _make_transform(self):
        ext = self

        class OpenBISHubHeaders(OutputTransform):
            """Frame-ancestors on every response; iframe-friendly cookies over https."""

            def __init__(self, request):
                super().__init__(request)
                self.request = request

            def transform_first_chunk(self, status_code, headers, chunk, finishing):
                if ext.set_csp:
                    headers["Content-Security-Policy"] = merge_csp(headers.get("Content-Security-Policy"), ext.csp)
                return super().transform_first_chunk(status_code, headers, chunk, finishing)

        return OpenBISHubHeaders

    def _hub_api(self) -> tuple[str, dict, dict] | None:
        """``(Hub API URL, headers with this server's token, httpx client options)``, or None without a hub."""
        api_url = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not (api_url and api_token and self.hub_user):
            return None
        options: dict = {"timeout": self.openbis_timeout}
        ca, cert, key = (os.environ.get(f"JUPYTERHUB_SSL_{n}") or None for n in ("CLIENT_CA", "CERTFILE", "KEYFILE"))
        if ca:
            options["verify"] = ca
        if cert and key:
            options["cert"] = (cert, key)
        headers = {"Authorization": f"token {api_token}", "Accept": "application/json"}
        return api_url, headers, options

    def _owner_model_call(self) -> tuple[str, str, str]:
        # /users/<owner>, not /user: only the former carries auth_state (JupyterHub's SelfAPIHandler leaves it empty)
        return "GET", f"/users/{quote(self.hub_user, safe='')}", "read the openBIS token from the hub"

    def _take_pending_call(self) -> tuple[str, str, str]:
        return "POST", f"/openbis/pending/{quote(self.hub_user, safe='')}/take", "take waiting notebooks from the hub"

    def _ask_hub_now(self, method: str, path: str, what: str) -> httpx.Response | None:
        """One Hub API call, synchronously (at start, before the server serves); None if it failed."""
        api_url, headers, options = self._hub_api()
        try:
            with httpx.Client(**options) as client:
                return client.request(method, api_url + path, headers=headers)
        except httpx.HTTPError as e:
            self.log.warning("openbis-hub: could not %s (%s)", what, type(e).__name__)
            return None

    async def _ask_hub(self, method: str, path: str, what: str) -> httpx.Response | None:
        """One Hub API call; None if it failed."""
        api_url, headers, options = self._hub_api()
        try:
            async with httpx.AsyncClient(**options) as client:
                return await client.request(method, api_url + path, headers=headers)
        except httpx.HTTPError as e:
            self.log.warning("openbis-hub: could not %s (%s)", what, type(e).__name__)
            return None

    async def take_pending(self) -> list[dict]:
        """The notebooks the launch service handed to the hub for this server (taken: gone there)."""
        if not self._hub_api():
            return []
        return self._pending_from(await self._ask_hub(*self._take_pending_call()))

    def _pending_from(self, response: httpx.Response | None) -> list[dict]:
        if response is None or response.status_code == 404:
            return []  # a hub without openbis-hub's authenticator
        if response.status_code != 200:
            self.log.warning("openbis-hub: the hub answered HTTP %s for waiting notebooks", response.status_code)
            return []
        try:
            notebooks = response.json().get("notebooks", [])
        except (ValueError, AttributeError):
            return []
        return [n for n in notebooks if isinstance(n, dict)]

    async def place_waiting(self) -> list[dict]:
        """Take the notebooks the hub holds for this server and place them; what was placed."""
        return self.place_pending(await self.take_pending())

    def place_pending(self, notebooks: list[dict]) -> list[dict]:
        """Write each notebook without replacing anything; a renamed one gets a redirect."""
        placed = []
        for notebook in notebooks:
            folder, file_name = str(notebook.get("folder", "")), str(notebook.get("fileName", ""))
            clean = "/".join(p for p in folder.split("/") if p)  # as place() reads it, so the keys match URLs
            requested = f"{clean}/{file_name}" if clean else file_name
            try:
                path = placement.place(self.root_dir, folder, file_name, notebook.get("content") or {})
            except (placement.PlacementError, OSError) as e:
                self.log.error("openbis-hub: could not place a notebook from the ELN: %s", e)
                placed.append({"requested": requested, "error": str(e)[:200]})
                continue
            if path != requested:
                self.redirects[requested] = path
                self.log.info("openbis-hub: %s was taken; the new notebook is %s", requested, path)
            placed.append({"requested": requested, "path": path})
        return placed

    def _hub_model(self, response: httpx.Response | None) -> dict | None:
        if response is None:
            return None
        if response.status_code != 200:
            self.log.warning("openbis-hub: the hub answered HTTP %s for this server's user", response.status_code)
            return None
        try:
            model = response.json()
        except ValueError:
            return None
        return model if isinstance(model, dict) else None

    def apply_hub_model(self, model: dict | None) -> bool:
        """Write the token of the owner's auth_state for pybis; True when the file changed.

        A token is written only when the hub holds one this server has not
        applied yet, so a token a researcher set in a kernel themselves
        (``o.set_token(...)``) stays until a new one arrives on the hub.
        """
        auth_state = model.get("auth_state") if isinstance(model, dict) else None
        if not isinstance(auth_state, dict):
            return False
        token = auth_state.get("notebook_token") or auth_state.get("openbis_token")
        if not isinstance(token, str) or not token or token == self._last_hub_token:
            return False
        try:
            changed = self.write_token(token)
        except (OSError, ValueError) as e:
            self.log.error("openbis-hub: could not write the openBIS token file: %s", e)
            return False
        self._last_hub_token = token
        return changed

    async def refresh_token_from_hub(self) -> bool:
        """Read the owner's openBIS token from the hub now; True when the token file changed.

        Concurrent calls share one read.
        """
        if not (self.openbis_url and self._hub_api()):
            return False
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(lambda _: setattr(self, "_refreshing", None))
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> bool:
        changed = self.apply_hub_model(self._hub_model(await self._ask_hub(*self._owner_model_call())))
        if changed:
            self.log.info("openbis-hub: openBIS token refreshed from the hub")
        return changed

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()


def request_is_https(request) -> bool:
    """Served over https: directly, or behind a proxy that says so."""
    if request.protocol == "https":
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return forwarded.split(",")[0].strip().lower() == "https"


_cookie_hook_owner: OpenBISServerExtension | None = None


def _install_cookie_hook(ext: OpenBISServerExtension) -> None:
    """Make every cookie of an https request ``SameSite=None; Secure``.

    Tornado adds ``Set-Cookie`` headers after output transforms run, so the
    attributes are set where cookies are made: ``RequestHandler.set_cookie``
    is wrapped once per process (this server only).  The per-request choice
    (https directly or behind a proxy) is why this is not a config value
    (``HubOAuth.cookie_options``, ``xsrf_cookie_kwargs``): those are the same
    for every request.

    Upstream it relies on: every cookie passes through ``set_cookie`` with
    the keyword arguments ``secure`` and ``samesite``
    (https://github.com/tornadoweb/tornado/blob/v6.6.1/tornado/web.py#L642:
    ``set_signed_cookie`` and ``xsrf_token`` call it); checked by
    ``tests/unit/test_upstream_unit.py::test_tornado_sets_every_cookie_through_set_cookie``.
    """
    global _cookie_hook_owner
    _cookie_hook_owner = ext
    if getattr(RequestHandler.set_cookie, "_openbis_hub", False):
        return
    original = RequestHandler.set_cookie

    def set_cookie(self, name, value, *args, **kwargs):
        owner = _cookie_hook_owner
        if owner is not None and owner.iframe_cookies is not False:
            if owner.iframe_cookies or request_is_https(self.request):
                kwargs["samesite"] = "None"
                kwargs["secure"] = True
                kwargs.pop("SameSite", None)
                kwargs.pop("Secure", None)
        return original(self, name, value, *args, **kwargs)

    set_cookie._openbis_hub = True
    RequestHandler.set_cookie = set_cookie


def merge_csp(existing: str | None, frame_ancestors: str) -> str:
    """Replace the ``frame-ancestors`` directive of ``existing`` (or add it)."""
    directives = [d.strip() for d in (existing or "").split(";") if d.strip()]
    kept = [d for d in directives if not d.lower().startswith("frame-ancestors")]
    return "; ".join([frame_ancestors, *kept])
