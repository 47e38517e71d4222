"""OpenBISAuthenticator: log in to JupyterHub with an openBIS token or password.

The openBIS ELN opens ``<hub>/hub/login?token=<openBIS session token>&next=<path>``;
that link logs the user in with no page in between and then follows ``next``.
The login form takes an openBIS user name and password, or a token.

The hub user name is the ``userName`` openBIS reports for the token, never
text parsed out of the token.  The token is kept, encrypted, in auth_state:
the one source the user's server reads its openBIS token from (with its own
hub token, which may read its owner's auth_state and nothing else).
"""

from __future__ import annotations

from urllib.parse import quote

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.auth import Authenticator
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Bool, Float, Integer, Unicode, default, validate

from . import pending, proxy_errors
from .errors import InvalidToken, OpenBISError
from .openbis import OpenBISClient, is_personal_access_token
from .scopes import require_sync_scope
from .urls import check_openbis_url

TOKEN_FIELDS = ("token", "session")  # "session" is what jupyter-openbis-authenticator's form used


class OpenBISLoginRefused(web.HTTPError):
    """openBIS refused the login (403 for pages) or could not be asked.

    ``openbis_status`` is what the API answers: 401 for a token or password
    openBIS refused, 502 when openBIS is down or answered nonsense.
    """

    def __init__(self, openbis_status: int, message: str):
        super().__init__(403 if openbis_status == 401 else 503, message)
        self.openbis_status = openbis_status


# what may stay unescaped in a redirect target: RFC 3986's reserved and unreserved characters
_URL_SAFE = "/:@!$&'()*+,;=~"


def as_url(path: str) -> str:
    """A decoded ``next`` (the ELN ``encodeURIComponent``-ed it) as a URL again.

    Typed names hold ``%``, spaces and any Unicode; redirected to unescaped,
    the proxy cannot decode the path and answers 500.  Each such character
    is escaped again, so the browser lands on exactly the decoded path.
    """
    path_part, sep, query = path.partition("?")
    query, hash_sep, fragment = query.partition("#")
    out = quote(path_part, safe=_URL_SAFE)
    if sep:
        out += "?" + quote(query, safe=_URL_SAFE + "?")
    if hash_sep:
        out += "#" + quote(fragment, safe=_URL_SAFE + "?")
    return out


class OpenBISLoginHandler(LoginHandler):
    """``/hub/login``: the ELN's token link, plus the usual form.

    ``GET /hub/login?token=<t>&next=<path>`` logs in and redirects to
    ``next`` (or to the user's server, started if needed).  Without a token
    it renders the login form.
    """

    def _token_argument(self) -> str | None:
        for field in TOKEN_FIELDS:
            value = self.get_query_argument(field, None)
            if value is not None:
                return value
        return None

    def _redirect_after_login(self, user) -> None:
        # Two JupyterHub internals, pinned by tests/unit/test_upstream_unit.py:
        # - BaseHandler._jupyterhub_user: the logged-in user for this request, as
        #   LoginHandler.post sets it (jupyterhub/handlers/login.py, 6.1.1);
        # - BaseHandler._validate_next_url (jupyterhub/handlers/base.py:809, 6.1.1):
        #   local paths only, as JupyterHub validates ?next=.  Never get_next_url():
        #   without a valid ?next= it copies the query, ?token= included, into the redirect.
        self._jupyterhub_user = user
        next_url = self._validate_next_url(as_url(self.get_argument("next", "")))
        if next_url:
            if next_url.startswith(user.url) and not user.spawner.active:
                # the server is not running: start it on the way instead of
                # showing the "server not running" page
                spawn = url_path_join(self.hub.base_url, "spawn", user.escaped_name)
                next_url = f"{spawn}?next={web.escape.url_escape(next_url)}"
        elif user.spawner.active:
            next_url = user.url
        else:
            next_url = url_path_join(self.hub.base_url, "spawn")
        self.redirect(next_url)

    async def get(self):
        token = self._token_argument()
        if token is None:
            return await super().get()
        user = await self.login_user({"token": token})
        if user is None:
            raise web.HTTPError(403, "openBIS did not accept this token.")
        self._redirect_after_login(user)

    async def post(self):
        data = {
            arg: self.get_argument(arg, strip=arg == "username")
            for arg in self.request.body_arguments
            if arg != "_xsrf"
        }
        user = await self.login_user(data)
        if user is None:
            self.set_status(403)
            username = data.get("username", "")
            self.finish(
                await self._render(
                    login_error="Invalid openBIS user name, password or token",
                    username=username[:32],
                )
            )
            return
        self._redirect_after_login(user)


class OpenBISSyncUserHandler(APIHandler):
    """``POST /hub/api/openbis/users`` ``{"token": <openBIS token>}``.

    Runs the whole login pipeline for the token's owner without a browser:
    the token is checked with openBIS (the one check of an ELN click), the
    user is created if needed (allowed/blocked users apply) and the fresh
    token replaces the one in auth_state, where the user's server reads it.

    Needs the custom scope ``custom:openbis-hub:sync`` (the launch service
    holds it): 401 for a token openBIS refused, 403 for a user this hub does
    not allow, 502 when openBIS is down.
    """

    async def post(self):
        require_sync_scope(self)
        model = self.get_json_body() or {}
        token = model.get("token") if isinstance(model, dict) else None
        if not isinstance(token, str) or not token:
            raise web.HTTPError(400, "Body must be JSON with an openBIS 'token'.")
        try:
            authenticated = await self.authenticate({"token": token})
        except OpenBISLoginRefused as e:
            raise web.HTTPError(e.openbis_status, e.log_message) from None
        if not authenticated:
            raise web.HTTPError(403, "This openBIS user may not use this hub.")
        created = self.find_user(authenticated["name"]) is None
        user = await self.auth_to_user(authenticated)
        self.write({"name": user.name, "created": created})


class OpenBISAuthenticator(Authenticator):
    """Authenticate JupyterHub users against openBIS.

    Accepts an openBIS session token or personal access token (from the
    ELN's ``/hub/login?token=`` link or the form), or an openBIS user name
    and password.
    """

    openbis_url = Unicode(
        config=True,
        help="""
        URL of the openBIS server, e.g. ``https://openbis.example.org``
        (without ``/openbis/``).  Tokens are checked against its V3 API at
        ``<openbis_url>/openbis/openbis/rmi-application-server-v3.json``.
        The deployment sets it from ``OPENBIS_URL``.
        """,
    )

    @validate("openbis_url")
    def _validate_openbis_url(self, proposal):
        return check_openbis_url(proposal.value, "OpenBISAuthenticator.openbis_url") if proposal.value else ""

    openbis_ca_bundle = Unicode(
        config=True,
        help="""
        Path to a CA bundle (PEM) that signed openBIS's certificate, for
        sites with their own CA.  Empty: the system's trusted CAs.  The
        deployment sets it from ``OPENBIS_CA_BUNDLE``.
        """,
    )

    verify_tls = Bool(
        True,
        config=True,
        help="""
        Verify openBIS's TLS certificate.  Turn off only for a local trial
        with a self-signed certificate; prefer ``openbis_ca_bundle``.
        """,
    )

    openbis_timeout = Float(
        10,
        config=True,
        help="""
        Seconds to wait for an answer from openBIS.  A user whose login
        would wait longer sees "openBIS is unreachable" instead of a hang.
        """,
    )

    token_cache_ttl = Float(
        60,
        config=True,
        help="""
        Seconds a token that openBIS accepted is trusted without asking
        again, so a burst of requests costs openBIS one call per token.
        0 asks openBIS every time.  Refused tokens are remembered for two
        seconds at most; an unreachable openBIS is never remembered.
        """,
    )

    lowercase_usernames = Bool(
        False,
        config=True,
        help="""
        Lower-case openBIS user ids to make hub user names.

        Off by default: the ELN opens ``/user/<openBIS user id>/...`` with the
        id exactly as openBIS spells it, so ``Jane.Doe`` must stay
        ``Jane.Doe``.  Turn on only if your openBIS user ids are
        case-insensitive and you never use the ELN's links.
        """,
    )

    create_personal_access_token = Bool(
        False,
        config=True,
        help="""
        At login with a session token or password, create an openBIS
        personal access token for the notebook server and hand that to it
        instead of the session token.  Long analyses then outlive the
        openBIS session timeout.  Needs personal access tokens enabled in
        openBIS.  An existing, still valid token is reused.
        """,
    )

    personal_access_token_validity = Integer(
        7 * 24 * 3600,
        config=True,
        help="""
        Seconds a personal access token created by
        ``create_personal_access_token`` stays valid.  openBIS caps it at
        its ``personal-access-tokens-max-validity-period``.
        """,
    )

    personal_access_token_session_name = Unicode(
        "openbis-hub",
        config=True,
        help="Session name of the personal access tokens created for notebooks (shown in openBIS).",
    )

    login_hint = Unicode(
        config=True,
        help="""
        A line shown on the hub's login page above the form, e.g. which
        accounts a trial installation has.  Empty: nothing is shown.
        (``openbis-hub demo`` sets it to the stand-in's demo logins.)
        """,
    )

    dataset_link_template = Unicode(
        config=True,
        help="""
        Where the link "Open it in the openBIS ELN" after a save points:
        ``{openbis_url}`` and ``{permId}`` are filled in.  Passed to each
        user's server as ``OPENBIS_HUB_DATASET_LINK``.  Empty: the server's
        default, the dataset's page in the ELN served by openBIS
        (``{openbis_url}/openbis/webapp/eln-lims/?...&viewData={permId}``).
        Set it when the ELN lives elsewhere.
        """,
    )

    pending_dir = Unicode(
        "",
        help="""Directory where notebooks from the ELN wait for their user's server to start.

        The launch service answers the ELN's click on a stopped server at once
        and hands the notebook to the hub; the server takes it as it starts.
        With a directory here each waiting notebook is also a file (mode 0600,
        removed when taken or after ten minutes), so a hub that restarts in
        between still delivers it.  Empty: kept in memory only.  The deployment
        sets ``<state_dir>/pending``.
        """,
    ).tag(config=True)

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        # the openBIS token lives in auth_state: encrypted, needs JUPYTERHUB_CRYPT_KEY
        return True

    @default("allow_all")
    def _allow_all_default(self):
        # openBIS is the authority: every valid openBIS user may log in,
        # unless allowed_users narrows it down
        return not self.allowed_users

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    _client: OpenBISClient | None = None

    @property
    def openbis(self) -> OpenBISClient:
        """The one openBIS client of this hub (created on first use)."""
        if self._client is None:
            if not self.openbis_url:
                raise OpenBISError(
                    "openBIS URL is not configured: set OPENBIS_URL or OpenBISAuthenticator.openbis_url.",
                    status=500,
                )
            self._client = OpenBISClient(
                self.openbis_url,
                ca_bundle=self.openbis_ca_bundle or None,
                verify=self.verify_tls,
                timeout=self.openbis_timeout,
                cache_ttl=self.token_cache_ttl,
            )
        return self._client

    def get_handlers(self, app):
        # registered before JupyterHub's own, so they take /hub/login
        return [
            ("/login", OpenBISLoginHandler),
            ("/api/openbis/users", OpenBISSyncUserHandler),
            *pending.handlers,
            *proxy_errors.handlers,
        ]

    @property
    def pending_notebooks(self) -> pending.PendingNotebooks:
        """Notebooks the launch service handed over for servers still starting (see pending.py)."""
        if not hasattr(self, "_pending_notebooks"):
            self._pending_notebooks = pending.PendingNotebooks(directory=self.pending_dir or None, log=self.log)
        return self._pending_notebooks

    def normalize_username(self, username):
        """Keep the openBIS user id as it is, unless ``lowercase_usernames``."""
        if self.lowercase_usernames:
            username = username.lower()
        return self.username_map.get(username, username)

    async def authenticate(self, handler, data=None):
        """Check a token or a user name + password with openBIS.

        ``data`` may hold ``token`` (or ``session``) or ``username`` and
        ``password``; without data the ``token`` query argument is used.
        """
        data = data or {}
        token = next((data[f] for f in TOKEN_FIELDS if data.get(f)), None)
        if token is None and not data and handler is not None:
            token = handler.get_query_argument("token", None)
        try:
            if token is None:
                username, password = data.get("username"), data.get("password")
                if not username or not password:
                    return None
                token = await self.openbis.login(username, password)
            info = await self.openbis.session_information(token)
        except OpenBISError as e:
            self.log.warning("openBIS login refused: %s", e.message)
            raise OpenBISLoginRefused(401 if e.status == 401 else 502, e.message) from None
        notebook_token = token
        if self.create_personal_access_token and not info.personal_access_token:
            notebook_token = await self._notebook_pat(handler, token, info.user_id) or token
        auth_state = {
            "openbis_url": self.openbis_url,
            "openbis_user": info.user_id,
            "openbis_token": token,
            "personal_access_token": info.personal_access_token,
            # what the user's server gives pybis: the personal access token
            # in PAT mode, else the token the user logged in with
            "notebook_token": notebook_token,
        }
        return {"name": info.user_id, "auth_state": auth_state}

    async def _notebook_pat(self, handler, session_token: str, user_id: str) -> str | None:
        """A personal access token for the notebook: the stored one if still valid, else a new one."""
        user = handler.find_user(self.normalize_username(user_id)) if handler is not None else None
        old = (await user.get_auth_state() or {}).get("notebook_token") if user else None
        if old and is_personal_access_token(old):
            try:
                await self.openbis.session_information(old)
                return old
            except InvalidToken:
                pass
            except OpenBISError:
                return old
        try:
            info = await self.openbis.server_information(session_token)
            limit = int(info.get("personal-access-tokens-max-validity-period") or 0)
            validity = min(self.personal_access_token_validity, limit) if limit else self.personal_access_token_validity
            return await self.openbis.create_personal_access_token(
                session_token, self.personal_access_token_session_name, validity
            )
        except OpenBISError as e:
            self.log.warning("Could not create a personal access token for %s: %s", user_id, e.message)
            return None

    async def refresh_user(self, user, handler=None):
        """Re-validate the stored token; a dead token means "log in again"."""
        auth_state = await user.get_auth_state()
        if not auth_state or not auth_state.get("openbis_token"):
            return True  # users created through the API have nothing to refresh
        try:
            await self.openbis.session_information(auth_state["openbis_token"])
        except InvalidToken:
            self.log.info("openBIS token of %s is no longer valid", user.name)
            return False
        except OpenBISError as e:
            self.log.warning("Could not refresh %s: %s", user.name, e.message)
        return True

    async def pre_spawn_start(self, user, spawner):
        """Tell the server where openBIS is.

        The token itself is not put into the environment: the server reads
        it from auth_state through the Hub API as it starts, and again when
        the launch service says a new one has arrived, so there is one path.
        """
        spawner.environment["OPENBIS_URL"] = self.openbis_url
        if self.dataset_link_template:
            spawner.environment["OPENBIS_HUB_DATASET_LINK"] = self.dataset_link_template
