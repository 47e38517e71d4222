"""A small async client for the openBIS V3 JSON-RPC API.

It is the one wrapper around openBIS used by the hub, the launch service and
the single-user extension.  It knows no JupyterHub.

openBIS answers errors with HTTP 200 and a JSON-RPC ``error`` whose message
often contains the token itself; every error raised here carries a message of
our own, so no token ever reaches a log line or an HTTP answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import (
    InvalidToken,
    LoginFailed,
    OpenBISUnreachable,
    PersonalAccessTokenNotValid,
    SessionExpired,
    UnexpectedAnswer,
)

AS_V3_PATH = "/openbis/openbis/rmi-application-server-v3.json"
PAT_PREFIX = "$pat-"
MAX_TOKEN_LENGTH = 1024

log = logging.getLogger("openbis_hub.openbis")


@dataclass(frozen=True)
class SessionInfo:
    """Who owns a token, as openBIS reports it."""

    user_id: str
    personal_access_token: bool
    pat_session_name: str | None = None


def looks_like_token(token: str | None) -> bool:
    """Cheap local sanity check before asking openBIS: non-empty, short, printable."""
    return bool(token) and len(token) <= MAX_TOKEN_LENGTH and token.isprintable() and " " not in token


def is_personal_access_token(token: str) -> bool:
    return token.startswith(PAT_PREFIX)


def token_key(token: str) -> str:
    """A key to remember a token by without keeping the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def _error_for(message: str, exception_type: str) -> InvalidToken | UnexpectedAnswer:
    """Map an openBIS error text to a typed error with a message of our own."""
    if "Session no longer available" in message:
        return SessionExpired("The openBIS session has expired. Log in to openBIS again.")
    if "Personal access token" in message:
        return PersonalAccessTokenNotValid(
            "The openBIS personal access token is not valid (not yet valid, expired or deleted)."
        )
    if (
        "InvalidSessionException" in exception_type
        or "is invalid" in message
        or "No 'sessionToken' specified" in message
        or "not logged in" in message
    ):
        return InvalidToken("The openBIS token is not valid (unknown, logged out or malformed).")
    # openBIS puts the token into many of its messages: never repeat them.
    return UnexpectedAnswer(f"openBIS refused the request ({exception_type.rsplit('.', 1)[-1] or 'error'}).")


class OpenBISClient:
    """Talk to one openBIS application server.

    ``ca_bundle`` is a CA file to trust instead of the system store;
    ``verify=False`` turns TLS verification off (for local trials only).
    Validated tokens are remembered for ``cache_ttl`` seconds, so a burst of
    requests with one token costs openBIS one call; a refused token is
    remembered for ``failure_ttl`` seconds only, and an unreachable openBIS
    is never remembered.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_bundle: str | None = None,
        verify: bool = True,
        timeout: float = 10.0,
        cache_ttl: float = 60.0,
        failure_ttl: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not url or urlsplit(url).scheme not in {"http", "https"}:
            raise ValueError(f"openBIS URL must start with https:// (or http://), got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.failure_ttl = failure_ttl
        verify_arg: bool | ssl.SSLContext = verify
        if verify and ca_bundle:
            verify_arg = ssl.create_default_context(cafile=ca_bundle)
        self._http = httpx.AsyncClient(
            verify=verify_arg, timeout=timeout, transport=transport, follow_redirects=False
        )
        self._cache: dict[str, tuple[float, SessionInfo | InvalidToken]] = {}
        self._in_flight: dict[str, asyncio.Future] = {}
        self.calls = 0  # JSON-RPC calls made, for benchmarks and diagnostics

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> OpenBISClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def call(self, method: str, *params):
        """One JSON-RPC call to the application server; returns ``result``."""
        self.calls += 1
        body = {"method": method, "params": list(params), "id": "1", "jsonrpc": "2.0"}
        try:
            response = await self._http.post(self.url + AS_V3_PATH, json=body)
        except httpx.TimeoutException:
            raise OpenBISUnreachable(
                f"openBIS is unreachable: {self.url} did not answer within {self.timeout:g} s."
            ) from None
        except httpx.HTTPError as e:
            reason = "TLS certificate not trusted" if "CERTIFICATE" in str(e).upper() else type(e).__name__
            raise OpenBISUnreachable(f"openBIS is unreachable at {self.url} ({reason}).") from None
        if response.status_code != 200:
            raise UnexpectedAnswer(
                f"openBIS answered {method} with HTTP {response.status_code}; is {self.url} an openBIS server?"
            )
        try:
            answer = response.json()
        except ValueError:
            raise UnexpectedAnswer(f"openBIS answered {method} with something that is not JSON.") from None
        if not isinstance(answer, dict):
            raise UnexpectedAnswer(f"openBIS answered {method} with an unexpected JSON value.")
        if "error" in answer:
            error = answer["error"] or {}
            data = error.get("data") or {}
            raise _error_for(str(error.get("message") or ""), str(data.get("exceptionTypeName") or ""))
        if "result" not in answer:
            raise UnexpectedAnswer(f"openBIS answered {method} with neither result nor error.")
        return answer["result"]

    async def login(self, user: str, password: str) -> str:
        """Log in with user name and password; returns a new session token."""
        if not user or not password:
            raise LoginFailed("Enter your openBIS user name and password.")
        token = await self.call("login", user, password)
        if not token:
            raise LoginFailed("openBIS did not accept this user name and password.")
        if not isinstance(token, str):
            raise UnexpectedAnswer("openBIS answered login with something that is not a token.")
        return token

    async def logout(self, token: str) -> None:
        self.forget(token)
        await self.call("logout", token)

    async def is_session_active(self, token: str) -> bool:
        """True if openBIS knows the token; does not extend the session."""
        if not looks_like_token(token):
            return False
        return bool(await self.call("isSessionActive", token))

    async def server_information(self, token: str) -> dict:
        info = await self.call("getServerInformation", token)
        if not isinstance(info, dict):
            raise UnexpectedAnswer("openBIS answered getServerInformation with an unexpected value.")
        return info

    async def session_information(self, token: str, *, use_cache: bool = True) -> SessionInfo:
        """Validate ``token`` and return who owns it (``getSessionInformation``).

        The owner is what openBIS says, never what the token string claims.
        Concurrent calls for the same token share one request to openBIS.
        """
        if not looks_like_token(token):
            raise InvalidToken("The openBIS token is missing or malformed.")
        key = token_key(token)
        if use_cache:
            cached = self._cache.get(key)
            if cached and cached[0] > time.monotonic():
                if isinstance(cached[1], InvalidToken):
                    raise cached[1]
                return cached[1]
            if key in self._in_flight:
                return await asyncio.shield(self._in_flight[key])
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            info = await self._ask_session_information(token)
        except InvalidToken as e:
            self._cache[key] = (time.monotonic() + self.failure_ttl, e)
            future.set_exception(e)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            future.exception()
            raise
        else:
            self._cache[key] = (time.monotonic() + self.cache_ttl, info)
            future.set_result(info)
            return info
        finally:
            self._in_flight.pop(key, None)
            self._prune_cache()

    async def _ask_session_information(self, token: str) -> SessionInfo:
        result = await self.call("getSessionInformation", token)
        if not isinstance(result, dict) or not isinstance(result.get("userName"), str):
            raise UnexpectedAnswer("openBIS answered getSessionInformation without a userName.")
        return SessionInfo(
            user_id=result["userName"],
            personal_access_token=bool(result.get("personalAccessTokenSession")),
            pat_session_name=result.get("personalAccessTokenSessionName"),
        )

    def forget(self, token: str) -> None:
        """Drop a token from the cache (after logout, or when openBIS refused it elsewhere)."""
        self._cache.pop(token_key(token), None)

    def _prune_cache(self) -> None:
        if len(self._cache) < 1024:
            return
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]

    async def create_personal_access_token(self, token: str, session_name: str, valid_seconds: int) -> str:
        """Create a personal access token owned by the session's user; returns the PAT."""
        now_ms = int(time.time() * 1000)
        creation = {
            "@type": "as.dto.pat.create.PersonalAccessTokenCreation",
            "sessionName": session_name,
            "validFromDate": now_ms,
            "validToDate": now_ms + int(valid_seconds) * 1000,
        }
        result = await self.call("createPersonalAccessTokens", token, [creation])
        try:
            pat = result[0]["permId"]
        except (TypeError, KeyError, IndexError):
            raise UnexpectedAnswer("openBIS answered createPersonalAccessTokens without a token.") from None
        if not isinstance(pat, str) or not is_personal_access_token(pat):
            raise UnexpectedAnswer("openBIS created a personal access token of an unknown form.")
        return pat
