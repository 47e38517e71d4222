"""The one wrapper around the JupyterHub REST API and the users' servers.

``HubAPI`` talks to ``$JUPYTERHUB_API_URL`` with the service's token, and to
single-user servers through the proxy (``/user/<name>/...``) with the same
token, which holds ``access:servers``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote, urlsplit

import httpx

from .errors import HubAPIError

log = logging.getLogger("openbis_hub.hub_api")

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SpawnFailed(HubAPIError):
    status = 502


class SpawnTimeout(HubAPIError):
    status = 504


def _hub_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except ValueError:
        return response.reason_phrase


class HubAPI:
    """Users, servers and files of one JupyterHub.

    ``api_url``: the Hub API (``JUPYTERHUB_API_URL``); ``proxy_url``: where
    ``/user/<name>/`` is served (the hub's public address, seen from here).
    """

    def __init__(self, api_url: str, api_token: str, proxy_url: str, *, timeout: float = 30.0):
        self.api_url = api_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/")
        headers = {"Authorization": f"token {api_token}"}
        self._hub = httpx.AsyncClient(headers=headers, timeout=timeout)
        # traffic to a proxy on this host never leaves it: its certificate
        # (made for the public name) need not match 127.0.0.1
        verify = urlsplit(self.proxy_url).hostname not in LOOPBACK_HOSTS
        self._servers = httpx.AsyncClient(headers=headers, timeout=timeout, verify=verify)
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
        """Create or update the token owner's hub user (authenticator pipeline); returns its name."""
        try:
            response = await self.request("POST", "/openbis/users", json={"token": openbis_token})
        except HubAPIError as e:
            if e.status == 403:
                raise HubAPIError("This openBIS user may not use this JupyterHub.", status=403) from None
            raise
        return response.json()["name"]

    async def get_user(self, name: str) -> dict:
        return (await self.request("GET", f"/users/{quote(name, safe='')}")).json()

    async def server(self, name: str) -> dict | None:
        """The user's default server model, or None if it is not running or starting."""
        return (await self.get_user(name)).get("servers", {}).get("")

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
                raise SpawnFailed(f"The server of {name} is not starting.")
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

    def user_server_url(self, name: str, path: str = "") -> str:
        return f"{self.proxy_url}/user/{quote(name, safe='')}/{path.lstrip('/')}"

    async def server_request(self, name: str, method: str, path: str, **kwargs) -> httpx.Response:
        """A request to ``/user/<name>/<path>``; raises HubAPIError unless 2xx (404 returned)."""
        url = self.user_server_url(name, path)
        try:
            response = await self._servers.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise HubAPIError(f"The server of {name} is unreachable ({type(e).__name__}).", status=502) from None
        if response.status_code >= 400 and response.status_code != 404:
            if "text/html" in response.headers.get("content-type", ""):
                message = f"the server of {name} is not running"  # the hub answered in its place
            else:
                message = _hub_message(response)
            raise HubAPIError(f"{method} {path.split('?')[0]} failed: {message}", status=response.status_code)
        return response
