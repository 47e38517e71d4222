"""The launch service's one wrapper around JupyterHub: its REST API and the users' servers.

Two credentials, never mixed:

* the service's own token (``$JUPYTERHUB_API_TOKEN``) goes to the Hub API only
  (``$JUPYTERHUB_API_URL``, which the hub serves itself, never through a
  user's server);
* every request to ``/user/<name>/...`` carries a short-lived token **owned by
  <name>** with the single scope ``access:servers!user=<name>``, minted through
  ``POST /users/<name>/tokens`` and reused until shortly before it expires.
  A user controls their own server and sees every header it receives; what
  they can capture there lets them do nothing they could not do already.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import quote, urlsplit

import httpx

from ..errors import HubAPIError, ServerUnreachable, Unauthorized

log = logging.getLogger("openbis_hub.service.hub")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SpawnFailed(HubAPIError):
    status = 502


class SpawnTimeout(HubAPIError):
    status = 504


class NotStarting(SpawnFailed):
    """The hub says the server is not starting (a spawn that failed before anyone followed it)."""


def _hub_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.reason_phrase


def user_server_scopes(name: str) -> list[str]:
    """The scopes of the tokens the service uses for ``name``'s server: that server, nothing else."""
    return [f"access:servers!user={name}"]


class HubAPI:
    """Users, servers and files of one JupyterHub.

    ``api_url``: the Hub API (``JUPYTERHUB_API_URL``); ``proxy_url``: where
    ``/user/<name>/`` is served (the hub's public address, seen from here).
    ``user_token_lifetime``: seconds a minted per-user token lives; it is
    replaced once less than a fifth of that is left.  ``transport`` is for
    tests (``httpx.MockTransport``).
    """

    def __init__(
        self,
        api_url: str,
        api_token: str,
        proxy_url: str,
        *,
        timeout: float = 30.0,
        user_token_lifetime: int = 600,
        max_answer_bytes: int = 64 * 1024 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/")
        self.user_token_lifetime = max(60, int(user_token_lifetime))
        # a user's server is the user's: its answers are read up to this size, no further
        self.max_answer_bytes = max_answer_bytes
        self._hub = httpx.AsyncClient(
            headers={"Authorization": f"token {api_token}"}, timeout=timeout, transport=transport
        )
        # traffic to a proxy on this host never leaves it: its certificate
        # (made for the public name) need not match 127.0.0.1.  No default
        # Authorization header here: each request carries its user's own token.
        verify = urlsplit(self.proxy_url).hostname not in LOOPBACK_HOSTS
        self._servers = httpx.AsyncClient(timeout=timeout, verify=verify, transport=transport)
        self._user_tokens: dict[str, tuple[str, float]] = {}
        self._minting: dict[str, asyncio.Task] = {}
        self.calls = 0  # Hub API calls made, for benchmarks and diagnostics

    async def aclose(self) -> None:
        await self._hub.aclose()
        await self._servers.aclose()

    async def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One Hub API call; raises HubAPIError with the hub's message if it is not 2xx."""
        self.calls += 1
        try:
            response = await self._hub.request(method, self.api_url + path, **kwargs)
        except httpx.HTTPError as e:
            raise HubAPIError(f"JupyterHub is unreachable ({type(e).__name__}).", status=502) from None
        if response.status_code >= 400:
            raise HubAPIError(
                f"JupyterHub refused {method} {path.split('?')[0]}: {_hub_message(response)}",
                status=response.status_code,
            )
        return response

    # users

    async def sync_user(self, openbis_token: str) -> str:
        """Log the token's owner in to the hub (the authenticator's whole pipeline); returns the hub name.

        The hub checks the token with openBIS (the one check of a click),
        creates the user if needed and stores the token in auth_state.
        """
        try:
            response = await self.request("POST", "/openbis/users", json={"token": openbis_token})
        except HubAPIError as e:
            if e.status == 401:
                raise Unauthorized(e.message.partition(": ")[2] or "openBIS did not accept this token.") from None
            if e.status == 403:
                raise HubAPIError("This openBIS user may not use this JupyterHub.", status=403) from None
            if e.status >= 500:
                raise HubAPIError(e.message.partition(": ")[2] or e.message, status=502) from None
            raise
        name = response.json().get("name")
        if not isinstance(name, str) or not name:
            raise HubAPIError("JupyterHub answered the login without a user name.", status=502)
        return name

    async def get_user(self, name: str) -> dict:
        return (await self.request("GET", f"/users/{quote(name, safe='')}")).json()

    async def server(self, name: str) -> dict | None:
        """The user's default server model, or None if it is not running or starting."""
        return (await self.get_user(name)).get("servers", {}).get("")

    async def queue_notebook(self, name: str, folder: str, file_name: str, content: dict) -> None:
        """Hand a notebook to the hub for ``name``'s server, which places it as it starts (pending.py)."""
        body = {"folder": folder, "fileName": file_name, "content": content}
        await self.request("POST", f"/openbis/pending/{quote(name, safe='')}", json=body)

    # tokens for the users' servers

    async def user_token(self, name: str) -> str:
        """A token owned by ``name`` that opens ``name``'s server and nothing else (cached)."""
        cached = self._user_tokens.get(name)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        task = self._minting.get(name)
        if task is None:
            task = self._minting[name] = asyncio.ensure_future(self._mint_user_token(name))
            task.add_done_callback(lambda _, name=name: self._minting.pop(name, None))
        return await asyncio.shield(task)

    async def _mint_user_token(self, name: str) -> str:
        body = {
            "expires_in": self.user_token_lifetime,
            "scopes": user_server_scopes(name),
            "note": "openbis-hub launch service: writes notebooks into this user's server",
        }
        response = await self.request("POST", f"/users/{quote(name, safe='')}/tokens", json=body)
        token = response.json().get("token")
        if not isinstance(token, str) or not token:
            raise HubAPIError("JupyterHub created a token without a value.", status=502)
        # renew with a fifth of the lifetime left, so a token never expires mid-request
        self._user_tokens[name] = (token, time.monotonic() + self.user_token_lifetime * 0.8)
        now = time.monotonic()
        for old in [n for n, (_, until) in self._user_tokens.items() if until < now]:
            del self._user_tokens[old]
        return token

    def forget_user_token(self, name: str) -> None:
        self._user_tokens.pop(name, None)

    # servers

    async def start_server(self, name: str) -> bool:
        """Ask the hub to start the default server; True if it was already running."""
        try:
            await self.request("POST", f"/users/{quote(name, safe='')}/server")
        except HubAPIError as e:
            if e.status == 400 and "already running" in e.message:
                return True
            if e.status == 400 and "pending" in e.message:
                return False
            raise SpawnFailed(f"Could not start the server of {name}: {e.message}", status=e.status) from None
        return False

    async def wait_ready(self, name: str, timeout: float, poll_interval: float = 2.0) -> None:
        """Follow the spawn's progress stream until ready; SpawnFailed / SpawnTimeout otherwise.

        The user model is polled alongside, so a missed progress event costs
        ``poll_interval`` at most, never the whole timeout.
        """
        waiters = [
            asyncio.ensure_future(self._follow_progress(name)),
            asyncio.ensure_future(self._poll_ready(name, poll_interval)),
        ]
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise SpawnTimeout(f"The server of {name} did not start within {timeout:g} s. Try again in a moment.")
            for finished in done:
                finished.result()  # raises SpawnFailed with the hub's reason
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _poll_ready(self, name: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            server = await self.server(name)
            if server and server.get("ready"):
                return

    async def _follow_progress(self, name: str) -> None:
        url = f"{self.api_url}/users/{quote(name, safe='')}/server/progress"
        self.calls += 1
        async with self._hub.stream("GET", url, timeout=httpx.Timeout(30, read=None)) as response:
            if response.status_code == 400:
                # not starting: either it is ready already or it failed
                server = await self.server(name)
                if server and server.get("ready"):
                    return
                raise NotStarting(f"The server of {name} is not starting.")
            if response.status_code >= 400:
                await response.aread()
                raise HubAPIError(f"Progress of {name}: {_hub_message(response)}", status=response.status_code)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise SpawnFailed(event.get("message") or f"The server of {name} failed to start.")
                if event.get("ready"):
                    return
        raise SpawnFailed(f"The progress of {name}'s server ended before it was ready.")

    # the user's server, through the proxy

    async def _bounded(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; read at most ``max_answer_bytes`` of the answer (502 beyond)."""
        response = await self._servers.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_answer_bytes:
                    limit = self.max_answer_bytes / (1 << 20)
                    raise HubAPIError(f"A user's server answered with more than {limit:g} MiB.", status=502)
        finally:
            await response.aclose()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request)

    def user_server_url(self, name: str, path: str = "") -> str:
        return f"{self.proxy_url}/user/{quote(name, safe='')}/{path.lstrip('/')}"

    async def server_request(self, name: str, method: str, path: str, **kwargs) -> httpx.Response:
        """A request to ``/user/<name>/<path>`` with ``name``'s own token.

        Raises HubAPIError unless 2xx (a 404 is returned).  A token the server
        refuses (revoked, expired early) is replaced once.
        """
        url = self.user_server_url(name, path)
        for attempt in (1, 2):
            headers = {"Authorization": f"token {await self.user_token(name)}"}
            try:
                response = await self._bounded(self._servers.build_request(method, url, headers=headers, **kwargs))
            except httpx.HTTPError as e:
                raise ServerUnreachable(f"The server of {name} is unreachable ({type(e).__name__}).") from None
            if (
                response.status_code in (401, 403)
                and attempt == 1
                and "json" in response.headers.get("content-type", "")
            ):
                self.forget_user_token(name)
                continue
            break
        if response.status_code >= 400 and response.status_code != 404:
            if "text/html" in response.headers.get("content-type", ""):
                # the proxy could not reach it and the hub's error page answered in its place
                raise ServerUnreachable(f"{method} {path.split('?')[0]} failed: the server of {name} is not running")
            message = _hub_message(response)
            # the user's server failing is a bad gateway for our callers, never our own 500
            status = 502 if response.status_code >= 500 else response.status_code
            raise HubAPIError(f"{method} {path.split('?')[0]} failed: {message}", status=status)
        return response
