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

from ..hub_api import HubAPI
from ..openbis import OpenBISClient
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
        reservation_seconds: float = 300,
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

    @contextlib.asynccontextmanager
    async def user_server(self, token: str):
        """Hold the user's lock with their server running; yields the hub user name."""
        info = await self.openbis.session_information(token)  # 401 for a bad token
        async with self._locks[info.user_id]:
            name = await self.hub.sync_user(token)
            await self._ensure_running(name, token)
            yield name

    async def _ensure_running(self, name: str, token: str) -> None:
        server = await self.hub.server(name)
        if server and server.get("ready"):
            await self._push_token(name, token)
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

    async def choose_name(self, user: str, folder: str, filename: str, *, dry_run: bool) -> str:
        """The file name to write: ``filename`` or ``name 2.ipynb`` ... unless overwriting."""
        if self.overwrite:
            return filename
        existing = await contents.names_in(self.hub, user, folder)
        key = (user, folder, filename)
        now = time.monotonic()
        queue = self._reserved[key]
        while queue and queue[0][1] < now:
            queue.popleft()
        if not dry_run and queue:
            name, _ = queue.popleft()
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
            queue.append((chosen, now + self.reservation_seconds))
        return chosen
