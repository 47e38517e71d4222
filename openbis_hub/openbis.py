"""A small async client for the openBIS V3 JSON-RPC API.

It is the one wrapper around openBIS used by the hub, the launch service and
the single-user extension.  It knows no JupyterHub.

openBIS answers errors with HTTP 200 and a JSON-RPC ``error`` whose message
often contains the token itself; every error raised here carries a message of
our own, so no token ever reaches a log line or an HTTP answer.

Nothing openBIS answers is trusted: an answer is read in chunks and dropped
once it is larger than ``max_answer_bytes``, a whole call (connect, send and
read) has to finish within ``timeout`` seconds, errors of any shape map to a
typed error, and a user name is only accepted if it is safe to use as a
JupyterHub user name and a directory name (:func:`valid_user_name`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import (
    AccessDenied,
    InvalidToken,
    LoginFailed,
    NotFound,
    OpenBISUnreachable,
    PersonalAccessTokenNotValid,
    SessionExpired,
    UnexpectedAnswer,
)
from .urls import check_openbis_url

AS_V3_PATH = "/openbis/openbis/rmi-application-server-v3.json"
DSS_V3_PATH = "/datastore_server/rmi-data-store-server-v3.json"
PAT_PREFIX = "$pat-"
MAX_TOKEN_LENGTH = 1024
MAX_USER_NAME_LENGTH = 255
MAX_ANSWER_BYTES = 16 * 1024 * 1024
# what an exception type name from openBIS may look like to be repeated in a message of ours
_JAVA_CLASS_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")

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


def valid_user_name(name: object) -> bool:
    """True if ``name`` is safe to use as a user name: for JupyterHub, in paths and in log lines.

    That is a non-empty string of at most 255 printable characters without
    leading or trailing whitespace, without ``/`` or ``\\``, and not ``.``, ``..``
    or anything containing ``..``.
    """
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_USER_NAME_LENGTH
        and name.isprintable()
        and name == name.strip()
        and "/" not in name
        and "\\" not in name
        and ".." not in name
        and name != "."
    )


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
    if "AuthorizationFailureException" in exception_type:
        return AccessDenied("openBIS refused access: your openBIS user lacks the permission for this.")
    if "ObjectNotFoundException" in exception_type:
        return NotFound("openBIS does not have it (any more): it was not found.")
    # openBIS puts the token into many of its messages: never repeat them, and
    # repeat the exception type only if it looks like a Java class name.
    simple_name = exception_type.rsplit(".", 1)[-1]
    if len(exception_type) > 200 or not _JAVA_CLASS_NAME.fullmatch(exception_type):
        simple_name = "error"
    return UnexpectedAnswer(f"openBIS refused the request ({simple_name}).")


def _error_from(error: object, method: str) -> InvalidToken | UnexpectedAnswer:
    """Map a JSON-RPC ``error`` of any shape to a typed error with a message of our own.

    openBIS sends ``{"message": ..., "data": {"exceptionTypeName": ...}}``; a bare
    string is read as the message, anything else (a list, a number, ...) is an
    answer of an unknown form.
    """
    if isinstance(error, str):
        return _error_for(error, "")
    if not isinstance(error, dict):
        return UnexpectedAnswer(f"openBIS answered {method} with an error of an unknown form.")
    message = error.get("message")
    data = error.get("data")
    exception_type = data.get("exceptionTypeName") if isinstance(data, dict) else None
    return _error_for(
        message if isinstance(message, str) else "",
        exception_type if isinstance(exception_type, str) else "",
    )


class OpenBISClient:
    """Talk to one openBIS application server.

    ``ca_bundle`` is a CA file to trust instead of the system store;
    ``verify=False`` turns TLS verification off (for local trials only).
    Validated tokens are remembered for ``cache_ttl`` seconds, so a burst of
    requests with one token costs openBIS one call; a refused token is
    remembered for ``failure_ttl`` seconds only, and an unreachable openBIS
    is never remembered.  A call, including reading the answer, has to
    finish within ``timeout`` seconds, and an answer larger than
    ``max_answer_bytes`` is refused.
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
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = check_openbis_url(url)
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.failure_ttl = failure_ttl
        self.max_answer_bytes = max_answer_bytes
        verify_arg: bool | ssl.SSLContext = verify
        if verify and ca_bundle:
            verify_arg = ssl.create_default_context(cafile=ca_bundle)
        self._http = httpx.AsyncClient(verify=verify_arg, timeout=timeout, transport=transport, follow_redirects=False)
        self._cache: dict[str, tuple[float, SessionInfo | InvalidToken]] = {}
        self._in_flight: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()  # every shared token check still running
        self.calls = 0  # JSON-RPC calls made, for benchmarks and diagnostics

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    async def __aenter__(self) -> OpenBISClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def call(self, method: str, *params, endpoint: str | None = None):
        """One JSON-RPC call to the application server (or ``endpoint``, a full URL); returns ``result``."""
        self.calls += 1
        body = {"method": method, "params": list(params), "id": "1", "jsonrpc": "2.0"}
        try:
            # httpx's timeout applies to each read; this one to the whole call
            content = await asyncio.wait_for(self._post(method, body, endpoint), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise OpenBISUnreachable(
                f"openBIS is unreachable: {self.url} did not answer within {self.timeout:g} s."
            ) from None
        except httpx.DecodingError:
            raise UnexpectedAnswer(f"openBIS answered {method} with an answer that cannot be decoded.") from None
        except httpx.HTTPError as e:
            reason = "TLS certificate not trusted" if "CERTIFICATE" in str(e).upper() else type(e).__name__
            raise OpenBISUnreachable(f"openBIS is unreachable at {self.url} ({reason}).") from None
        try:
            answer = json.loads(content)
        except (ValueError, RecursionError):
            raise UnexpectedAnswer(f"openBIS answered {method} with something that is not JSON.") from None
        if not isinstance(answer, dict):
            raise UnexpectedAnswer(f"openBIS answered {method} with an unexpected JSON value.")
        # JSON-RPC 1.0 servers send "error": null next to a result
        if "error" in answer and not (answer["error"] is None and "result" in answer):
            error = _error_from(answer["error"], method)
            repeated = any(isinstance(p, str) and p and p in error.message for p in params)
            if isinstance(error, UnexpectedAnswer) and repeated:
                error = UnexpectedAnswer(f"openBIS refused {method}.")  # never repeat a token
            raise error
        if "result" not in answer:
            raise UnexpectedAnswer(f"openBIS answered {method} with neither result nor error.")
        return answer["result"]

    async def _post(self, method: str, body: dict, endpoint: str | None = None) -> bytes:
        """POST ``body`` and read the answer, refusing one larger than ``max_answer_bytes``."""
        too_large = UnexpectedAnswer(
            f"openBIS answered {method} with more than {self.max_answer_bytes} bytes; refused."
        )
        # ask for no compression, so the bytes counted are the bytes kept
        headers = {"Accept-Encoding": "identity"}
        url = endpoint or self.url + AS_V3_PATH
        async with self._http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                raise UnexpectedAnswer(
                    f"openBIS answered {method} with HTTP {response.status_code}; is {self.url} an openBIS server?"
                )
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.max_answer_bytes:
                raise too_large
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise too_large
                chunks.append(chunk)
        return b"".join(chunks)

    async def login(self, user: str, password: str) -> str:
        """Log in with user name and password; returns a new session token."""
        if not user or not password:
            raise LoginFailed("Enter your openBIS user name and password.")
        token = await self.call("login", user, password)
        if not token:
            raise LoginFailed("openBIS did not accept this user name and password.")
        if not isinstance(token, str) or not looks_like_token(token):
            raise UnexpectedAnswer("openBIS answered login with something that is not a token.")
        return token

    async def logout(self, token: str) -> None:
        self.forget(token)
        await self.call("logout", token)

    async def is_session_active(self, token: str) -> bool:
        """True if openBIS knows the token; does not extend the session."""
        if not looks_like_token(token):
            return False
        active = await self.call("isSessionActive", token)
        if not isinstance(active, bool):
            raise UnexpectedAnswer("openBIS answered isSessionActive with something that is not true or false.")
        return active

    async def server_information(self, token: str) -> dict:
        info = await self.call("getServerInformation", token)
        if not isinstance(info, dict):
            raise UnexpectedAnswer("openBIS answered getServerInformation with an unexpected value.")
        return info

    async def session_information(self, token: str, *, use_cache: bool = True) -> SessionInfo:
        """Validate ``token`` and return who owns it (``getSessionInformation``).

        The owner is what openBIS says, never what the token string claims.
        Concurrent calls for the same token share one request to openBIS; it
        runs as a task of its own, so a caller that is cancelled cancels only
        its own wait, never the request the others wait for.
        """
        if not looks_like_token(token):
            raise InvalidToken("The openBIS token is missing or malformed.")
        key = token_key(token)
        task = None
        if use_cache:
            cached = self._cache.get(key)
            if cached and cached[0] > time.monotonic():
                if isinstance(cached[1], InvalidToken):
                    raise cached[1]
                return cached[1]
            task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._check_session(token, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # mark an exception retrieved even if every caller was cancelled meanwhile
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._in_flight[key] = task
        return await asyncio.shield(task)

    async def _check_session(self, token: str, key: str) -> SessionInfo:
        """Ask openBIS about ``token`` and remember the answer (the task shared by concurrent callers)."""
        try:
            info = await self._ask_session_information(token)
        except InvalidToken as e:
            self._cache[key] = (time.monotonic() + self.failure_ttl, e)
            raise
        else:
            self._cache[key] = (time.monotonic() + self.cache_ttl, info)
            return info
        finally:
            if self._in_flight.get(key) is asyncio.current_task():
                del self._in_flight[key]
            self._prune_cache()

    async def _ask_session_information(self, token: str) -> SessionInfo:
        result = await self.call("getSessionInformation", token)
        if not isinstance(result, dict) or "userName" not in result:
            raise UnexpectedAnswer("openBIS answered getSessionInformation without a userName.")
        user_name = result["userName"]
        if not valid_user_name(user_name):
            shown = ""
            if isinstance(user_name, str) and user_name.isprintable() and token not in user_name:
                shown = f" ({user_name[:40]!r}{'...' if len(user_name) > 40 else ''})"
            raise UnexpectedAnswer(f"openBIS reported a user name that cannot be used{shown}.")
        session_name = result.get("personalAccessTokenSessionName")
        return SessionInfo(
            user_id=user_name,
            personal_access_token=result.get("personalAccessTokenSession") is True,
            pat_session_name=session_name if isinstance(session_name, str) else None,
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
        if not isinstance(pat, str) or not is_personal_access_token(pat) or not looks_like_token(pat):
            raise UnexpectedAnswer("openBIS created a personal access token of an unknown form.")
        return pat

    # ------------------------------------------------------------------ V3 reads

    async def search(self, token: str, entity: str, criteria: dict, fetch_options: dict) -> tuple[list[dict], int]:
        """``search<entity>`` (e.g. ``Samples``): ``(objects, totalCount)``, Jackson references resolved."""
        result = await self.call(f"search{entity}", token, criteria, fetch_options)
        if not isinstance(result, dict) or not isinstance(result.get("objects"), list):
            raise UnexpectedAnswer(f"openBIS answered search{entity} without a list of objects.")
        objects = [o for o in resolve_references(result["objects"]) if isinstance(o, dict)]
        total = result.get("totalCount")
        return objects, total if isinstance(total, int) else len(objects)

    async def get(self, token: str, entity: str, ids: list[dict], fetch_options: dict) -> dict[str, dict]:
        """``get<entity>``: ``{id string: object}``; ids openBIS does not have (or hides) are absent."""
        result = await self.call(f"get{entity}", token, ids, fetch_options)
        if not isinstance(result, dict):
            raise UnexpectedAnswer(f"openBIS answered get{entity} with something that is not a map.")
        resolved = resolve_references(result)
        return {k: v for k, v in resolved.items() if isinstance(v, dict)}

    async def datastore_url(self, token: str) -> str:
        """The data store server's download URL (``searchDataStores``), remembered once known."""
        cached = getattr(self, "_datastore_url", None)
        if cached:
            return cached
        stores, _ = await self.search(
            token,
            "DataStores",
            {"@type": "as.dto.datastore.search.DataStoreSearchCriteria", "operator": "AND", "criteria": []},
            {"@type": "as.dto.datastore.fetchoptions.DataStoreFetchOptions"},
        )
        url = next((s.get("downloadUrl") for s in stores if isinstance(s.get("downloadUrl"), str)), None)
        if not url or not url.startswith(("https://", "http://")):
            raise UnexpectedAnswer("openBIS named no data store server with a download URL.")
        self._datastore_url = url.rstrip("/")
        return self._datastore_url

    async def call_dss(self, token: str, method: str, *params):
        """One JSON-RPC call to the data store server."""
        return await self.call(method, token, *params, endpoint=await self.datastore_url(token) + DSS_V3_PATH)

    async def dataset_files(self, token: str, perm_id: str) -> list[dict]:
        """The files of a dataset (DSS ``searchFiles``): ``[{path, directory, size}]`` in path order."""
        criteria = {
            "@type": "dss.dto.datasetfile.search.DataSetFileSearchCriteria",
            "operator": "AND",
            "criteria": [
                {
                    "@type": "as.dto.dataset.search.DataSetSearchCriteria",
                    "operator": "OR",
                    "criteria": [
                        {
                            "@type": "as.dto.common.search.CodeSearchCriteria",
                            "fieldName": "code",
                            "fieldType": "ATTRIBUTE",
                            "fieldValue": {"@type": "as.dto.common.search.StringEqualToValue", "value": perm_id},
                        }
                    ],
                }
            ],
        }
        result = await self.call_dss(
            token, "searchFiles", criteria, {"@type": "dss.dto.datasetfile.fetchoptions.DataSetFileFetchOptions"}
        )
        objects = result.get("objects") if isinstance(result, dict) else None
        if not isinstance(objects, list):
            raise UnexpectedAnswer("openBIS answered searchFiles without a list of files.")
        files = []
        for f in objects:
            if isinstance(f, dict) and isinstance(f.get("path"), str) and f["path"]:
                size = f.get("fileLength")
                files.append(
                    {
                        "path": f["path"],
                        "directory": bool(f.get("directory")),
                        "size": size if isinstance(size, int) else 0,
                    }
                )
        return sorted(files, key=lambda f: f["path"])

    async def download_file(self, token: str, perm_id: str, path: str, write, *, chunk_size: int = 1 << 20) -> int:
        """Stream one file of a dataset (``GET <dss>/datastore_server/<permId>/<path>``) into ``write(bytes)``.

        ``write`` may be a coroutine function.  Returns the number of bytes
        written.  Unlike :meth:`call`, the whole download has no time limit:
        only each read has (``timeout``).
        """
        from urllib.parse import quote

        url = f"{await self.datastore_url(token)}/datastore_server/{quote(perm_id, safe='')}/{quote(path)}"
        size = 0
        try:
            async with self._http.stream(
                "GET", url, params={"sessionID": token}, headers={"Accept-Encoding": "identity"}
            ) as response:
                if response.status_code == 404:
                    raise NotFound(f"openBIS has no file {path!r} in dataset {perm_id} (any more).")
                if response.status_code in (401, 403):
                    raise InvalidToken("openBIS refused the download: the openBIS token is not valid.")
                if response.status_code != 200:
                    raise UnexpectedAnswer(
                        f"openBIS answered the download of {path!r} with HTTP {response.status_code}."
                    )
                async for chunk in response.aiter_bytes(chunk_size):
                    outcome = write(chunk)
                    if asyncio.iscoroutine(outcome):
                        await outcome
                    size += len(chunk)
        except httpx.TimeoutException:
            raise OpenBISUnreachable(f"openBIS stopped answering the download of {path!r}.") from None
        except httpx.HTTPError as e:
            raise OpenBISUnreachable(f"openBIS is unreachable at {self.url} ({type(e).__name__}).") from None
        return size


def resolve_references(value):
    """Undo Jackson's object references: an integer where an ``@id``'d object was seen comes back as the object.

    Only values under the keys openBIS uses for related objects are replaced
    (an integer ``fileLength`` stays an integer).
    """
    seen: dict[int, dict] = {}

    def collect(v):
        if isinstance(v, dict):
            if isinstance(v.get("@id"), int):
                seen[v["@id"]] = v
            for item in v.values():
                collect(item)
        elif isinstance(v, list):
            for item in v:
                collect(item)

    def replace(v, key=None):
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and key in _REFERENCE_KEYS and v in seen:
            return seen[v]
        if isinstance(v, dict):
            return {k: replace(item, k) for k, item in v.items()}
        if isinstance(v, list):
            return [replace(item, key) for item in v]
        return v

    collect(value)
    return replace(value)


# keys under which openBIS writes a related object (or a reference to one seen before)
_REFERENCE_KEYS = frozenset(
    "registrator modifier owner type experiment sample project space dataStore dataSetPermId dataSetId "
    "parents children components containers dataSets samples experiments projects propertyType "
    "vocabulary terms entityType propertyAssignments person creatorPerson".split()
)
