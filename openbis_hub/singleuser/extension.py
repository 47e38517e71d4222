"""The openBIS side of a user's notebook server: token file, CSP, cookies, refresh."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback
from tornado.web import OutputTransform, RequestHandler
from traitlets import Bool, Float, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import tokens

DEFAULT_LINK_TEMPLATE = (
    "{openbis_url}/openbis/webapp/eln-lims/?menuUniqueId=null"
    "&viewName=showViewDataSetPageFromPermId&viewData={permId}"
)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


class OpenBISHub(LoggingConfigurable):
    """Connects the notebook server to openBIS.

    Configure as ``c.OpenBISHub.<trait>`` in ``jupyter_server_config.py``.
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

        Default: ``$JUPYTERHUB_USER``.  A token pushed to ``PUT openbis/token``
        must belong to this user.
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
        help="""Seconds between asking the hub for a fresher openBIS token (0: never).

        Reads ``auth_state.openbis_token`` from ``$JUPYTERHUB_API_URL/user`` with
        this server's API token; silently skipped when the hub does not share
        auth_state with the server.
        """,
    ).tag(config=True)

    dataset_type = Unicode(
        "ANALYSIS_NOTEBOOK",
        help="Dataset type of saved notebooks, unless the notebook or the request names another.",
    ).tag(config=True)

    export_html = Bool(True, help="Also upload an HTML export (nbconvert) of the notebook.").tag(config=True)

    link_template = Unicode(
        DEFAULT_LINK_TEMPLATE,
        help="Link to a saved dataset shown to the user; ``{openbis_url}`` and ``{permId}`` are filled in.",
    ).tag(config=True)

    openbis_timeout = Float(10.0, help="Seconds to wait for openBIS when checking tokens.").tag(config=True)

    # --- runtime ---------------------------------------------------------

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client = None
        self._refresher: PeriodicCallback | None = None
        self._last_hub_token: str | None = None

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
            from ..openbis import OpenBISClient

            self._client = OpenBISClient(url=self.openbis_url, ca_bundle=self.verify_ca, timeout=self.openbis_timeout)
        return self._client

    def current_token(self) -> str | None:
        """The token pybis in kernels uses now (the file), else ``$OPENBIS_TOKEN``."""
        if not self.openbis_url:
            return None
        return tokens.read_token_file(self.openbis_url, self.token_dir) or os.environ.get("OPENBIS_TOKEN") or None

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
        token = os.environ.get("OPENBIS_TOKEN")
        if self.openbis_url and token:
            try:
                self.write_token(token)
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
        if self.token_refresh_interval > 0 and os.environ.get("JUPYTERHUB_API_URL") and os.environ.get(
            "JUPYTERHUB_API_TOKEN"
        ):
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

    async def refresh_token_from_hub(self) -> bool:
        """Pull ``auth_state.openbis_token`` from the hub; True when the file changed.

        A token is written when the hub has one this server has not applied
        yet and it differs from the file, so a fresher token pushed to
        ``PUT openbis/token`` is not overwritten by an older one from the hub.
        """
        api_url = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not (api_url and api_token and self.openbis_url):
            return False
        request = HTTPRequest(
            api_url + "/user",
            headers={"Authorization": f"token {api_token}", "Accept": "application/json"},
            request_timeout=self.openbis_timeout,
            ca_certs=os.environ.get("JUPYTERHUB_SSL_CLIENT_CA") or None,
            client_cert=os.environ.get("JUPYTERHUB_SSL_CERTFILE") or None,
            client_key=os.environ.get("JUPYTERHUB_SSL_KEYFILE") or None,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
            model = json.loads(response.body)
        except HTTPClientError as e:
            if e.code not in (401, 403, 404):
                self.log.warning("openbis-hub: could not ask the hub for a fresh token (HTTP %s)", e.code)
            return False
        except Exception as e:
            self.log.warning("openbis-hub: could not ask the hub for a fresh token (%s)", type(e).__name__)
            return False
        auth_state = model.get("auth_state") if isinstance(model, dict) else None
        token = auth_state.get("openbis_token") if isinstance(auth_state, dict) else None
        if not isinstance(token, str) or not token:
            return False
        if token == self._last_hub_token:
            # already applied (or replaced since by a newer token pushed to PUT openbis/token)
            return False
        self._last_hub_token = token
        try:
            changed = self.write_token(token)
        except (OSError, ValueError) as e:
            self.log.error("openbis-hub: could not write the openBIS token file: %s", e)
            return False
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


_cookie_hook_owner: OpenBISHub | None = None


def _install_cookie_hook(ext: OpenBISHub) -> None:
    """Make every cookie of an https request ``SameSite=None; Secure``.

    Tornado adds ``Set-Cookie`` headers after output transforms run, so the
    attributes are set where cookies are made: ``RequestHandler.set_cookie``
    is wrapped once per process (this server only).
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
