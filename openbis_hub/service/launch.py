"""The launch flow: openBIS token -> hub user -> running server.

One lock per user: two clicks of the same user at once never start two
servers or interleave their writes; different users run in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque

from ..errors import HubAPIError
from ..hub_api import HubAPI
from ..openbis import OpenBISClient, token_key
from . import contents
from .paths import numbered

log = logging.getLogger("openbis_hub.service")


class Launcher:
    def __init__(
        self,
        openbis: OpenBISClient,
        hub: HubAPI,
        *,
        spawn_timeout: float = 120,
        overwrite: bool = False,
        reservation_seconds: float = 60,
    ):
        self.openbis = openbis
        self.hub = hub
        self.spawn_timeout = spawn_timeout
        self.overwrite = overwrite
        self.reservation_seconds = reservation_seconds
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # names handed out by dry runs, so that the write after a dry run
        # gets the same name and two dry runs at once get different ones
        self._reserved: dict[tuple[str, str, str], deque[tuple[str, float]]] = defaultdict(deque)
        # what a warm launch can skip: the token whose owner was synced into
        # the hub lately, and the token already handed to a running server
        self._synced: dict[str, tuple[str, float]] = {}
        self._pushed: dict[str, tuple[str, str | None]] = {}
        self.sync_seconds = openbis.cache_ttl

    @contextlib.asynccontextmanager
    async def user_server(self, token: str):
        """Hold the user's lock with their server running; yields the hub user name."""
        info = await self.openbis.session_information(token)  # 401 for a bad token
        async with self._locks[info.user_id]:
            key = token_key(token)
            name, synced_until = self._synced.get(key, (None, 0.0))
            try:
                if name is None or synced_until < time.monotonic():
                    name = await self.hub.sync_user(token)
                    self._remember_sync(key, name)
                server = await self.hub.server(name)
            except HubAPIError as e:
                self._synced.pop(key, None)
                if e.status != 404:
                    raise
                name = await self.hub.sync_user(token)  # deleted from the hub meanwhile
                server = await self.hub.server(name)
            await self._ensure_running(name, token, server)
            yield name

    def _remember_sync(self, key: str, name: str) -> None:
        now = time.monotonic()
        for old in [k for k, (_, until) in self._synced.items() if until < now]:
            del self._synced[old]  # tokens seen long ago: keep the memory bounded
        self._synced[key] = (name, now + self.sync_seconds)

    async def _ensure_running(self, name: str, token: str, server: dict | None) -> None:
        if server and server.get("ready"):
            if self._pushed.get(name) != (token_key(token), server.get("started")):
                await self._push_token(name, token)
                self._pushed[name] = (token_key(token), server.get("started"))
            return
        if server and server.get("pending") == "stop":
            deadline = time.monotonic() + self.spawn_timeout
            while await self.hub.server(name) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        if not (server and server.get("pending") == "spawn"):
            log.info("Starting the server of %s", name)
            if await self.hub.start_server(name):
                return
        await self.hub.wait_ready(name, self.spawn_timeout)

    async def _push_token(self, name: str, token: str) -> None:
        """Give a running server the user's current token (a new ELN click after expiry)."""
        response = await self.hub.server_request(name, "PUT", "openbis/token", json={"token": token})
        if response.status_code == 404:
            log.debug("The server of %s has no openbis_hub extension; token not pushed", name)

    async def choose_name(self, user: str, folder: str, filename: str, *, dry_run: bool) -> tuple[str, bool]:
        """The file name to write (``filename``, or ``name 2.ipynb`` ... unless overwriting),
        and whether ``folder`` exists already."""
        existing = await contents.names_in(self.hub, user, folder)
        if existing is None:
            existing, folder_exists = set(), False
        else:
            folder_exists = True
        return self._free_name(user, folder, filename, existing, dry_run), folder_exists

    def _free_name(self, user: str, folder: str, filename: str, existing: set[str], dry_run: bool) -> str:
        if self.overwrite:
            return filename
        now = time.monotonic()
        # expired reservations neither hold names nor memory
        for reserved_key, reserved in list(self._reserved.items()):
            while reserved and reserved[0][1] < now:
                reserved.popleft()
            if not reserved:
                del self._reserved[reserved_key]
        key = (user, folder, filename)
        queue = self._reserved.get(key)
        if not dry_run and queue:
            name, _ = queue.popleft()
            if not queue:
                del self._reserved[key]
            if name not in existing:
                return name
        taken = existing | {
            name for (u, f, _), q in self._reserved.items() if (u, f) == (user, folder) for name, _ in q
        }
        n = 1
        while numbered(filename, n) in taken:
            n += 1
        chosen = numbered(filename, n)
        if dry_run:
            self._reserved[key].append((chosen, now + self.reservation_seconds))
        return chosen
