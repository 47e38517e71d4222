"""The launch flow: openBIS token -> hub user -> running server.

* ``identify`` turns an openBIS token into a hub user name.  The hub checks
  the token with openBIS (once per click: a warm second request with the
  same token is answered from memory) and keeps it in auth_state, the one
  place a user's server reads it from.
* ``user_server`` holds one lock per user with their server running: two
  clicks of the same user at once never start two servers or interleave
  their writes; different users run in parallel.
* ``choose_name`` hands out collision-free names: a dry run reserves one, and
  the write that follows takes exactly that reservation.
* ``SpawnQueue``: when the hub refuses a start because too many servers are
  starting (its ``concurrent_spawn_limit``, HTTP 429), the start waits in a
  queue, in arrival order, and is retried; the click does not fail (the ELN
  does not retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable

from ..errors import HubAPIError, OpenBISHubError, ServerUnreachable, Unauthorized
from ..openbis import token_key
from . import contents
from .hub import HubAPI, NotStarting, SpawnFailed, SpawnTimeout
from .paths import numbered

log = logging.getLogger("openbis_hub.service")


class TooManyRefusals(OpenBISHubError):
    status = 429


class RefusedTokens:
    """Refused tokens, remembered per client, so guessing costs openBIS nothing.

    A token refused once is refused again from memory for ``ttl`` seconds; a
    client (remote address) with ``limit`` refusals within ``ttl`` seconds is
    answered 429 without asking anyone, until its refusals age out.
    """

    def __init__(self, ttl: float = 60.0, limit: int = 20, max_clients: int = 10_000):
        self.ttl = ttl
        self.limit = limit
        self.max_clients = max_clients
        self._tokens: dict[str, float] = {}
        self._clients: dict[str, deque[float]] = {}

    def check(self, client: str, token: str) -> None:
        now = time.monotonic()
        refusals = self._clients.get(client)
        while refusals and refusals[0] < now - self.ttl:
            refusals.popleft()
        if refusals is not None and not refusals:
            del self._clients[client]
        if self._tokens.get(token_key(token), 0) > now:
            raise Unauthorized("openBIS did not accept this token (unknown, expired or logged out).")
        if refusals and len(refusals) >= self.limit:
            error = TooManyRefusals(f"Too many refused tokens from this address; try again in {self.ttl:g} seconds.")
            error.headers = {"Retry-After": str(int(self.ttl))}
            raise error

    def remember(self, client: str, token: str) -> None:
        now = time.monotonic()
        if len(self._tokens) > self.max_clients * 4:
            self._tokens = {k: until for k, until in self._tokens.items() if until > now}
        self._tokens[token_key(token)] = now + self.ttl
        if client not in self._clients and len(self._clients) >= self.max_clients:
            self._clients.pop(next(iter(self._clients)))  # the oldest client goes
        self._clients.setdefault(client, deque()).append(now)


class SpawnQueue:
    """Starts the hub turned away (HTTP 429: ``concurrent_spawn_limit`` reached), retried first come, first served.

    One entry per user, in arrival order.  Only the oldest entry is retried
    (every ``retry_interval`` seconds while the hub still answers 429), so a
    click that came later never starts before one that came earlier.  An entry
    waiting longer than ``max_wait`` seconds fails with a clear error (503).
    ``start(name)`` asks the hub; it returns True if the server turned out
    to be running already.
    """

    def __init__(
        self, start: Callable[[str], Awaitable[bool]], *, retry_interval: float = 1.0, max_wait: float = 600.0
    ):
        self._start = start
        self.retry_interval = retry_interval
        self.max_wait = max_wait
        self._waiting: OrderedDict[str, tuple[asyncio.Future, float]] = OrderedDict()
        self._worker: asyncio.Task | None = None
        self.retries = 0  # refused attempts, for benchmarks and diagnostics
        self.longest_wait = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, name: str) -> bool:
        return name in self._waiting

    def position(self, name: str) -> int | None:
        """1 for the next to start; None if ``name`` is not waiting."""
        for index, waiting in enumerate(self._waiting, 1):
            if waiting == name:
                return index
        return None

    def get(self, name: str) -> asyncio.Future | None:
        """The future of ``name``'s queued start (True: it was running already), if it waits."""
        entry = self._waiting.get(name)
        return entry[0] if entry else None

    def add(self, name: str) -> asyncio.Future:
        """Queue ``name``'s start (once: a user waiting already keeps their place)."""
        if name not in self._waiting:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "never retrieved"
            self._waiting[name] = (future, time.monotonic())
            log.info("Too many servers are starting: %s waits, number %d in the queue", name, len(self._waiting))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())
        return self._waiting[name][0]

    async def _run(self) -> None:
        while self._waiting:
            name, (future, since) = next(iter(self._waiting.items()))
            waited = time.monotonic() - since
            if waited > self.max_wait:
                self._finish(name, error=SpawnTimeout(self._too_long(name), status=503))
                continue
            try:
                running = await self._start(name)
            except SpawnFailed as e:
                if e.status == 429:
                    self.retries += 1
                    await asyncio.sleep(self.retry_interval)
                    continue
                self._finish(name, error=e)
                continue
            except OpenBISHubError as e:
                self._finish(name, error=e)
                continue
            except Exception:  # a bug must not stall everyone behind this user
                log.exception("Queued start of %s failed", name)
                self._finish(name, error=SpawnFailed(f"Could not start the server of {name}."))
                continue
            self.longest_wait = max(self.longest_wait, waited)
            log.info("Started the server of %s after %.1f s in the queue", name, waited)
            self._finish(name, running=running)

    def _too_long(self, name: str) -> str:
        return (
            f"The server of {name} waited {self.max_wait:g} s for its turn to start: too many servers are"
            " starting at once. Try again in a minute."
        )

    def _finish(self, name: str, *, running: bool = False, error: Exception | None = None) -> None:
        future, _ = self._waiting.pop(name)
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(running)


class Launcher:
    def __init__(
        self,
        hub: HubAPI,
        *,
        spawn_timeout: float = 120,
        overwrite: bool = False,
        reservation_seconds: float = 60,
        token_memory_seconds: float = 60,
        refused: RefusedTokens | None = None,
        queue_retry_interval: float = 1.0,
        queue_max_wait: float = 600.0,
    ):
        self.hub = hub
        self.spawn_timeout = spawn_timeout
        self.overwrite = overwrite
        self.reservation_seconds = reservation_seconds
        self.token_memory_seconds = token_memory_seconds
        self.refused = refused or RefusedTokens()
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # names handed out by dry runs, so that the write after a dry run gets the same
        # name and two dry runs at once get different ones: (name, until, blind), where
        # blind means the dry run could not see the folder (the server was not running):
        # the server then places the notebook itself, renaming on a clash
        self._reserved: dict[tuple[str, str, str], deque[tuple[str, float, bool]]] = defaultdict(deque)
        # tokens the hub accepted lately: key -> (hub user, until)
        self._known: dict[str, tuple[str, float]] = {}
        # users whose auth_state changed since their running server last read it
        self._stale_servers: set[str] = set()
        self._undelivered: set[str] = set()  # handed over while the server was starting
        self._follow_ups: dict[str, asyncio.Task] = {}
        self._deferred: dict[str, asyncio.Task] = {}  # starts waiting for the hub to settle a server
        self.queue = SpawnQueue(self._start_now, retry_interval=queue_retry_interval, max_wait=queue_max_wait)

    async def identify(self, token: str, client: str = "") -> str:
        """The hub user of an openBIS token; 401 (or 429) before any work for a bad one."""
        self.refused.check(client, token)
        key = token_key(token)
        name, until = self._known.get(key, (None, 0.0))
        if name is not None and until > time.monotonic():
            return name
        try:
            name = await self.hub.sync_user(token)
        except Unauthorized:
            self.refused.remember(client, token)
            raise
        now = time.monotonic()
        for old in [k for k, (_, t) in self._known.items() if t < now]:
            del self._known[old]  # tokens seen long ago: keep the memory bounded
        self._known[key] = (name, now + self.token_memory_seconds)
        self._stale_servers.add(name)  # auth_state may hold a new token now
        return name

    @contextlib.asynccontextmanager
    async def user_server(self, name: str, *, wait: bool = True):
        """Hold the user's lock; yields True with the server running.

        ``wait=False``: a server that is not ready is started in the
        background and False is yielded at once (the ELN's cold click, which
        must answer within the browser's popup window).
        """
        async with self._locks[name]:
            server = await self.hub.server(name)
            if server and server.get("ready"):
                if name in self._stale_servers:
                    await self._refresh_token(name)
                yield True
            elif not wait:
                await self._start(name, server)
                yield False
            else:
                await self._ensure_running(name, server)
                yield True

    async def _start(self, name: str, server: dict | None) -> bool:
        """Ask for the server to start unless it is starting; True if it turned out to be running."""
        if server and server.get("pending") == "stop":
            deadline = time.monotonic() + self.spawn_timeout
            while await self.hub.server(name) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            server = None
        if server and server.get("pending") == "spawn":
            # it may have read auth_state before this click's token arrived: check once it is up
            if name in self._stale_servers:
                self._follow_up(name)
            return False
        if server and server.get("pending"):
            # the hub, just restarted, checks whether the server it knew still runs ("check"): the
            # hub refuses a start until it knows; start it then, if it turned out gone
            task = self._deferred.get(name)
            if task is None or task.done():
                task = self._deferred[name] = asyncio.ensure_future(self._start_after_pending(name))
                task.add_done_callback(lambda t, name=name: self._settled(name, t))
            return False
        # a server started now reads the token from auth_state as it starts
        self._stale_servers.discard(name)
        if self.queue:
            # others wait for their turn already: behind them, not before them
            self.queue.add(name)
            return False
        try:
            return await self._start_now(name)
        except SpawnFailed as e:
            if e.status != 429:
                raise
            self.queue.add(name)
            return False

    def _settled(self, name: str, task: asyncio.Task) -> None:
        if self._deferred.get(name) is task:
            del self._deferred[name]
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.warning("Starting the server of %s after the hub's check: %s", name, getattr(error, "message", error))

    async def _start_after_pending(self, name: str) -> bool:
        """Once the hub has settled the server's pending state: start it unless it runs."""
        deadline = time.monotonic() + self.spawn_timeout + 60
        while True:
            server = await self.hub.server(name)
            pending = server.get("pending") if server else None
            if not pending or pending == "spawn" or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        if server and server.get("ready"):
            return True
        log.info("The hub settled the server of %s (%s): starting it", name, pending or "not running")
        # not under the user's lock: a request holding it may be waiting for this very start
        return await self._start(name, await self.hub.server(name))

    async def _start_now(self, name: str) -> bool:
        log.info("Starting the server of %s", name)
        return await self.hub.start_server(name)

    async def _wait_for_turn(self, name: str) -> bool:
        """If ``name``'s start waits (queue, pending check): until it was asked for (True: running already)."""
        deferred = self._deferred.get(name)
        if deferred is not None:
            if await asyncio.shield(deferred):
                return True
        queued = self.queue.get(name)
        if queued is None:
            return False
        return await asyncio.shield(queued)

    async def _ensure_running(self, name: str, server: dict | None) -> None:
        if await self._start(name, server) or await self._wait_for_turn(name):
            return
        try:
            await self.hub.wait_ready(name, self.spawn_timeout)
        except NotStarting:
            # a start (an ELN click's) failed before anyone followed it: try once more, for its reason
            if not await self.hub.start_server(name):
                await self.hub.wait_ready(name, self.spawn_timeout)

    # notebooks for servers still starting

    async def hand_over(self, user: str, folder: str, file_name: str, notebook: dict, *, ready: bool) -> None:
        """Give the notebook to the user's server through the hub; the server places it (see pending.py).

        A running server is told to take it now; a starting one takes it as it
        starts, and in case it had already looked, it is told again once ready.
        """
        await self.hub.queue_notebook(user, folder, file_name, notebook)
        if ready:
            try:
                await self.deliver(user)
                return
            except ServerUnreachable as e:  # listed as running, restarting: it takes it as it starts
                log.info("%s; the notebook waits at the hub", e.message)
        self._undelivered.add(user)
        self._follow_up(user)

    async def deliver(self, user: str) -> list[dict]:
        """Tell the user's server to take and place its waiting notebooks; what it placed."""
        self._undelivered.discard(user)
        response = await self.hub.server_request(user, "POST", "openbis/pending")
        if response.status_code == 404:
            raise HubAPIError(f"The server of {user} cannot place notebooks (no openbis-hub extension).", status=502)
        return response.json().get("placed", [])

    def _follow_up(self, user: str) -> None:
        """Once the starting server is up: the token and the notebooks it may have missed."""
        task = self._follow_ups.get(user)
        if task is None or task.done():
            self._follow_ups[user] = asyncio.ensure_future(self._when_ready(user))

    async def _when_ready(self, user: str, attempts: int = 10) -> None:
        try:
            await self._wait_for_turn(user)
            await self.hub.wait_ready(user, self.spawn_timeout)
            for attempt in range(attempts):
                async with self._locks[user]:
                    if user in self._stale_servers:
                        await self._refresh_token(user)
                    try:
                        if user not in self._undelivered or await self.deliver(user):
                            return
                    except ServerUnreachable:
                        pass  # listed as ready, restarting: it takes them as it starts, or at the next try
                # nothing placed: the server took them as it started, or what answered was
                # still the old one (a Swarm service reuses its name): look again shortly
                self._undelivered.add(user)
                await asyncio.sleep(1 + attempt)
            self._undelivered.discard(user)
        except OpenBISHubError as e:
            log.warning("After the start of %s's server: %s", user, e.message)
        finally:
            self._follow_ups.pop(user, None)

    async def _refresh_token(self, name: str) -> None:
        """Ask a running server to read its owner's current openBIS token from the hub.

        No token travels with this request: the server reads auth_state with
        its own hub token, so nothing it receives here is worth capturing.
        """
        try:
            response = await self.hub.server_request(name, "POST", "openbis/token")
        except HubAPIError as e:
            log.warning("The server of %s did not refresh its openBIS token: %s", name, e.message)
            return
        if response.status_code == 404:
            log.debug("The server of %s has no openbis_hub extension; token not refreshed", name)
        self._stale_servers.discard(name)

    async def choose_name(
        self, user: str, folder: str, filename: str, *, dry_run: bool, claimed: str | None = None
    ) -> tuple[str, bool]:
        """The file name to write, and whether ``folder`` exists already.

        ``filename``, or ``name 2.ipynb`` ... unless overwriting.  A write
        takes the dry run's reservation named ``claimed`` (the ELN puts the
        name its dry run got into the notebook's ``fileName`` cell), else the
        oldest one of ``filename``.
        """
        existing = await contents.names_in(self.hub, user, folder)
        if existing is None:
            existing, folder_exists = set(), False
        else:
            folder_exists = True
        return self._free_name(user, folder, filename, existing, dry_run, claimed), folder_exists

    def reserve_blind(self, user: str, folder: str, filename: str) -> str:
        """A dry run's name while the server is not running: free among the reservations only."""
        return self._free_name(user, folder, filename, set(), True, blind=True)

    def take_blind(self, user: str, folder: str, filename: str, claimed: str | None) -> str | None:
        """The blind reservation a write takes, if its dry run made one; None otherwise."""
        queue = self._reserved.get((user, folder, filename))
        if not queue:
            return None
        entry = next((e for e in queue if e[0] == claimed), queue[0])
        if not entry[2]:
            return None
        return self._free_name(user, folder, filename, set(), False, entry[0])  # takes the reservation

    def name_for_unseen_write(self, user: str, folder: str, filename: str) -> str:
        """A write with no dry run of its own (or one expired) while the server is not running."""
        name = self.reserve_blind(user, folder, filename)
        return self.take_blind(user, folder, filename, name) or name  # overwriting: nothing is reserved

    def _free_name(
        self,
        user: str,
        folder: str,
        filename: str,
        existing: set[str],
        dry_run: bool,
        claimed: str | None = None,
        *,
        blind: bool = False,
    ) -> str:
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
            names = [name for name, _, _ in queue]
            index = names.index(claimed) if claimed in names else 0
            name = queue[index][0]
            del queue[index]
            if not queue:
                del self._reserved[key]
            if name not in existing:
                return name
        taken = existing | {
            name for (u, f, _), q in self._reserved.items() if (u, f) == (user, folder) for name, _, _ in q
        }
        n = 1
        while numbered(filename, n) in taken:
            n += 1
        chosen = numbered(filename, n)
        if dry_run:
            self._reserved[key].append((chosen, now + self.reservation_seconds, blind))
        return chosen
