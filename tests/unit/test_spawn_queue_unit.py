"""The spawn queue: when the hub's ``concurrent_spawn_limit`` is reached, a click waits its turn.

JupyterHub answers ``POST /users/<name>/server`` with 429 while as many servers
are starting as its ``concurrent_spawn_limit`` allows.  The ELN does not retry,
so the launch service must: the click is answered at once (the server places
the notebook when it starts), the start waits in a queue and is retried in
arrival order.  The hub here is an ``httpx.MockTransport`` with that limit.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from openbis_hub.service.app import OpenBISService

from inprocess import listen_on_loopback

SERVICE_TOKEN = "service-token-0123456789abcdef"
ELN = "https://openbis.example.org"


class LimitedHub:
    """JupyterHub with ``concurrent_spawn_limit = limit``: users start as stopped, spawns finish on ``finish()``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.starting: list[str] = []  # spawns in progress, in the order the hub accepted them
        self.running: set[str] = set()
        self.accepted: list[str] = []  # every start the hub accepted, in order
        self.refused: list[str] = []  # every start answered 429
        self.attempts: dict[str, int] = {}
        self.checking: set[str] = set()  # a hub just restarted checks whether these servers still run
        self.pending: dict[str, list[dict]] = {}
        self.transport = httpx.MockTransport(self.handle)

    def finish(self, name: str) -> None:
        self.starting.remove(name)
        self.running.add(name)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"token {SERVICE_TOKEN}":
            return httpx.Response(403, json={"message": "Missing or invalid credentials."})
        parts = request.url.path[len("/hub/api/") :].strip("/").split("/")
        if parts == ["openbis", "users"]:
            return httpx.Response(200, json={"name": json.loads(request.content)["token"].split("-")[1]})
        if parts[:2] == ["openbis", "pending"]:
            self.pending.setdefault(parts[2], []).append(json.loads(request.content))
            return httpx.Response(202, json={})
        name = parts[1] if len(parts) > 1 else ""
        if parts[0] == "users" and len(parts) == 2:
            if name in self.checking:
                server = {"ready": False, "pending": "check"}
            elif name in self.running:
                server = {"ready": True, "pending": None}
            elif name in self.starting:
                server = {"ready": False, "pending": "spawn"}
            else:
                return httpx.Response(200, json={"name": name, "servers": {}})
            return httpx.Response(200, json={"name": name, "servers": {"": server}})
        if parts[0] == "users" and parts[2:] == ["server"] and request.method == "POST":
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if name in self.checking:
                return httpx.Response(400, json={"message": f"{name} is pending check"})
            if name in self.running:
                return httpx.Response(400, json={"message": f"{name} is already running"})
            if name in self.starting:
                return httpx.Response(400, json={"message": f"{name} is pending spawn"})
            if len(self.starting) >= self.limit:
                self.refused.append(name)
                return httpx.Response(
                    429,
                    json={"message": "Too many users trying to log in right now. Try again in 40 seconds."},
                    headers={"Retry-After": "40"},
                )
            self.starting.append(name)
            self.accepted.append(name)
            return httpx.Response(202)
        if parts[0] == "users" and parts[2:] == ["server", "progress"]:
            if name not in self.starting:
                return httpx.Response(400, json={"message": "not starting"})
            return httpx.Response(200, stream=Progress(self, name), headers={"Content-Type": "text/event-stream"})
        return httpx.Response(404, json={"message": "Not found"})


class Progress(httpx.AsyncByteStream):
    """The hub's progress stream of a spawn: one event once the spawn finished."""

    def __init__(self, hub: LimitedHub, name: str):
        self.hub, self.name = hub, name

    async def __aiter__(self):
        await until(lambda: self.name in self.hub.running, timeout=60)
        yield b'data: {"progress": 100, "ready": true}\n\n'


async def until(condition, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds: the queue works in the background."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.fixture
async def limited():
    """The service's real tornado app, a hub allowing one spawn at a time behind it."""
    hub = LimitedHub(limit=1)
    app = OpenBISService(
        hub_api_url="http://hub.test/hub/api",
        api_token=SERVICE_TOKEN,
        proxy_url="http://proxy.test",
        eln_origins=[ELN],
        openbis_url=ELN,
    )
    web_app = app.make_app(transport=hub.transport)
    launcher = web_app.settings["launcher"]
    launcher.queue.retry_interval = 0.3
    server = app.make_server(web_app)
    port = listen_on_loopback(server)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/services/openbis", timeout=10) as client:
        yield hub, client, launcher
    server.stop()
    await app.hub.aclose()


async def click(client, user: str, name: str = "n.ipynb") -> list[httpx.Response]:
    """The ELN's click: the dry run, then the notebook."""
    query = f"/?token=good-{user}&folder=f&filename={name}"
    dry = await client.post(query + "&test=True", content=b"TEST")
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    write = await client.post(query + "&test=False", content=json.dumps(nb))
    return [dry, write]


async def test_clicks_beyond_the_spawn_limit_wait_their_turn_instead_of_failing(limited):
    hub, client, launcher = limited
    users = ["u1", "u2", "u3", "u4"]
    for user in users:
        for answer in await click(client, user):
            assert answer.status_code == 200, answer.text  # never the hub's 429
            assert answer.json()["fileName"] == "n.ipynb"
    assert hub.accepted == ["u1"], "one at a time, as the hub allows"
    assert hub.refused, "the hub did say 429"
    assert [launcher.queue.position(u) for u in users] == [None, 1, 2, 3]
    assert sorted(hub.pending) == users, "every notebook waits in the hub for its server"
    for i, user in enumerate(users):
        await until(lambda i=i: len(hub.accepted) == i + 1)
        hub.finish(user)
    await until(lambda: len(hub.accepted) == len(users))
    assert hub.accepted == users, "started in the order they clicked"
    assert not launcher.queue


async def test_a_later_click_does_not_jump_the_queue(limited):
    """A slot frees between two retries: the user who waited longest gets it, not the newcomer."""
    hub, client, launcher = limited
    await click(client, "first")
    await click(client, "waiting")
    assert "waiting" in launcher.queue
    hub.finish("first")  # a slot is free; the queue retries within retry_interval
    await click(client, "newcomer")
    assert hub.attempts.get("newcomer") is None, "the newcomer queued behind, without asking the hub"
    await until(lambda: len(hub.accepted) == 2)
    hub.finish("waiting")
    await until(lambda: len(hub.accepted) == 3)
    assert hub.accepted == ["first", "waiting", "newcomer"]


async def test_the_integrators_api_waits_in_the_queue_and_then_for_the_server(limited):
    """``wait=True`` paths (api/notebooks, the warm write) wait for their turn, then for the start."""
    hub, client, launcher = limited
    await click(client, "u1")
    waiter = asyncio.ensure_future(launcher._ensure_running("u2", None))
    await until(lambda: "u2" in launcher.queue)
    assert not waiter.done()
    hub.finish("u1")
    await until(lambda: hub.accepted == ["u1", "u2"])
    assert not waiter.done(), "it follows the start now"
    hub.finish("u2")
    await asyncio.wait_for(waiter, 10)


async def test_a_start_that_waits_too_long_fails_with_a_clear_error(limited):
    from openbis_hub.errors import OpenBISHubError

    hub, client, launcher = limited
    launcher.queue.max_wait = 0.2
    await click(client, "u1")
    with pytest.raises(OpenBISHubError) as caught:
        await launcher._ensure_running("u2", None)
    assert caught.value.status == 503
    assert "too many servers are starting" in caught.value.message
    assert not launcher.queue


async def test_a_click_while_the_restarted_hub_checks_a_server_starts_it_once_the_check_found_it_gone(limited):
    """After a hub restart the hub checks each server it knew ("pending check") and refuses starts
    meanwhile; a server that died with the hub must be started once the check gave up on it."""
    hub, client, launcher = limited
    hub.checking.add("dora")
    for answer in await click(client, "dora"):
        assert answer.status_code == 200, answer.text
    assert hub.accepted == []
    hub.checking.discard("dora")  # the check found the server gone
    await until(lambda: hub.accepted == ["dora"], timeout=10)
    assert hub.pending["dora"], "the notebook waits for the server that now starts"
