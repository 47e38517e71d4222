"""Faults the docker compose deployment survives, each on the real stack.

The hub killed (SIGTERM, SIGKILL) while users' servers run, the proxy killed,
the launch service killed while it writes, openBIS down, slow and back, a
user's volume full, more clicks at once than the hub starts servers: in each
case no 500 with a traceback, a JSON error within its timeout where a request
cannot succeed, and everything back without a manual step.

The stack is tests/test_docker.py's ``Stack`` under its own compose project
(so it can run beside that module), with openBIS behind a ``Gate``: a TCP
forwarder in this process that can refuse connections or hold them, so the
hub sees openBIS down or slow while the stand-in itself keeps running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest

from openbis_hub.deployment.docker import container_name, volume_name

from docker_stack import Stack, docker, engine, login, notebook, user_container  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

PREFIX = "openbis-hub-faults"
SPAWN_LIMIT = 2
OPENBIS_TIMEOUT = 3


class Gate:
    """A TCP forwarder to the stand-in: ``open``, ``down`` (connections closed at once) or ``slow``.

    ``slow`` holds each new connection ``delay`` seconds before forwarding it:
    openBIS answers, but after the hub's timeout.
    """

    def __init__(self, host: str, target: tuple[str, int]):
        self.host, self.target = host, target
        self.mode = "open"
        self.delay = 0.0
        self.connections = 0
        self._open: set = set()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.url = f"https://{host}:{self.port}"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def set(self, mode: str, delay: float = 0.0) -> None:
        """Switch mode; connections open already (the hub's keep-alive pool) are cut, as a restart of openBIS would."""
        self.mode, self.delay = mode, delay
        done = threading.Event()

        def cut():
            for transport in list(self._open):
                transport.abort()
            done.set()

        self.loop.call_soon_threadsafe(cut)
        done.wait(10)

    async def _handle(self, reader, writer):
        self.connections += 1
        self._open.add(writer.transport)
        try:
            await self._forward(reader, writer)
        finally:
            self._open.discard(writer.transport)

    async def _forward(self, reader, writer):
        if self.mode == "down":
            writer.transport.abort()
            return
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.add(up_writer.transport)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self):
        async def close():
            self.server.close()
            for transport in list(self._open):
                transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class FaultStack(Stack):
    prefix = PREFIX
    extra_env = {
        "OPENBIS_HUB_CONCURRENT_SPAWN_LIMIT": str(SPAWN_LIMIT),
        "OPENBIS_HUB_OPENBIS_TIMEOUT": str(OPENBIS_TIMEOUT),
        "OPENBIS_HUB_MEM_LIMIT": "512M",
    }

    def __init__(self, engine, tmp):
        super().__init__(engine, tmp)
        host, port = self.standin.url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        self.gate = Gate(host, (host, int(port)))
        # the hub and the users' servers reach openBIS through the gate; the ELN page stays the stand-in's
        self.env["OPENBIS_URL"] = self.gate.url
        self.env["OPENBIS_HUB_ELN_ORIGINS"] = self.standin.url

    def cleanup(self):
        super().cleanup()
        self.gate.stop()


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):  # noqa: F811
    s = FaultStack(engine, tmp_path_factory.mktemp("faults"))
    s.down()
    try:
        s.up()
        yield s
    finally:
        s.cleanup()


# --- helpers ---------------------------------------------------------------------


def volume_notebooks(user: str) -> dict[str, str]:
    """Every notebook in the user's volume and its text, read by a throwaway container."""
    script = (
        "import json,pathlib;print(json.dumps({str(p.relative_to('/v')): p.read_text(errors='replace')"
        " for p in pathlib.Path('/v').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts}))"
    )
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        "-v",
        f"{volume_name(user, f'{PREFIX}-user')}:/v:ro",
        "openbis-hub-singleuser:latest",
        "-c",
        script,
    )
    return json.loads(out.stdout)


def no_traceback(response: httpx.Response, *, ours: bool = True) -> dict:
    """A JSON error with a message, never a traceback; never a 500 from the launch service (``ours``).

    Jupyter Server's contents API answers an OSError with 500 and the error's text: that is
    Jupyter's own answer to JupyterLab, checked for a clear message only.
    """
    assert response.status_code >= 400, response.text[:500]
    if ours:
        assert response.status_code != 500, response.text[:2000]
    assert "Traceback" not in response.text and "traceback" not in response.json(), response.text[:2000]
    assert response.headers.get("content-type", "").startswith("application/json"), response.text[:500]
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def hub_state(stack: Stack) -> dict:
    return json.loads(docker("inspect", stack.hub_container()).stdout)[0]


def wait_for_hub_restart(stack: Stack, restarts_before: int, timeout: float = 180) -> None:
    """Until the engine restarted the hub container (its restart policy) and the hub answers."""
    deadline = time.monotonic() + timeout
    while True:
        state = hub_state(stack)
        if state["RestartCount"] > restarts_before and state["State"]["Running"]:
            break
        assert time.monotonic() < deadline, f"the hub was not restarted: {state['State']}"
        time.sleep(0.5)
    stack.wait_ready(timeout=max(10, deadline - time.monotonic()))


def user_token_for(stack: Stack, openbis_token: str, user: str) -> str:
    """A hub API token of ``user`` (as the user's browser could make one), for their server's API."""
    with login(stack, openbis_token, "/hub/home") as (browser, page):
        assert page.status_code == 200, page.text[:300]
        xsrf = browser.cookies.get("_xsrf", path="/hub/")
        r = browser.post(
            f"{stack.url}/hub/api/users/{quote(user, safe='')}/tokens",
            json={"expires_in": 3600, "note": "fault test"},
            headers={"X-XSRFToken": xsrf},
        )
    assert r.status_code in (200, 201), r.text
    return r.json()["token"]


def server_status(stack: Stack, user: str, token: str) -> int:
    """What ``/user/<name>/api/status`` answers through the proxy with the user's token (200: routed to it)."""
    try:
        with httpx.Client(verify=stack.hub_ca, timeout=10, headers={"Authorization": f"token {token}"}) as c:
            return c.get(f"{stack.url}/user/{quote(user, safe='')}/api/status").status_code
    except httpx.HTTPError:
        return 0


def wait_for_route(stack: Stack, user: str, token: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (status := server_status(stack, user, token)) != 200:
        assert time.monotonic() < deadline, f"no route to the server of {user} (last answer {status}):\n{stack.logs()}"
        time.sleep(0.5)


def process_in_hub(stack: Stack, marker: str) -> int:
    """The pid (in the hub container) of the one process whose command line holds ``marker``."""
    script = (
        "import os,sys\n"
        "found=[p for p in os.listdir('/proc') if p.isdigit() and p!=str(os.getpid()) and"
        " sys.argv[1].encode() in open(f'/proc/{p}/cmdline','rb').read().replace(b'\\0',b' ')]\n"
        "print(' '.join(found))"
    )
    out = docker("exec", stack.hub_container(), "python", "-c", script, marker).stdout.split()
    assert len(out) == 1, f"processes matching {marker!r}: {out}"
    return int(out[0])


def kill_in_hub(stack: Stack, pid: int, sig: int = signal.SIGKILL) -> None:
    docker("exec", stack.hub_container(), "python", "-c", f"import os; os.kill({pid}, {int(sig)})")


def proxy_pid(stack: Stack) -> int:
    """The proxy's pid as the hub knows it (its pid file): the log filter that runs the proxy's node."""
    out = docker("exec", stack.hub_container(), "cat", "/srv/openbis-hub/data/jupyterhub-proxy.pid", check=False)
    return int(out.stdout.strip() or 0)


def click(stack: Stack, token: str, folder: str, name: str, source: str) -> tuple[httpx.Response, httpx.Response]:
    dry = stack.eln_post(token, folder, name, None)
    write = stack.eln_post(token, folder, name, notebook(source))
    return dry, write


def user_of(stack: Stack, token: str) -> str:
    return stack.standin.rpc("getSessionInformation", token)["result"]["userName"]


# --- the hub, the proxy, the launch service -------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_users_servers_survive_a_hub_restart(stack, sig):
    """The hub's main process killed: the engine restarts the hub, the servers never stop, routes come back."""
    token = stack.token("alice", "alice-pw")
    stack.eln_create(token, "restart", f"before-{sig.name}.ipynb", "x = 1")
    before = user_container("alice", PREFIX)
    api_token = user_token_for(stack, token, "alice")
    wait_for_route(stack, "alice", api_token)
    restarts = hub_state(stack)["RestartCount"]

    # as a crash or the OOM killer would: a signal from outside to the container's init
    killed = time.monotonic()
    os.kill(hub_state(stack)["State"]["Pid"], sig)
    wait_for_hub_restart(stack, restarts)
    answering = time.monotonic() - killed

    wait_for_route(stack, "alice", api_token)  # the proxy is new: its routes came from the hub's database
    print(
        f"{sig.name}: the hub answered {answering:.1f} s after the kill, alice's route {time.monotonic() - killed:.1f} s"
    )
    after = user_container("alice", PREFIX)
    assert after["Id"] == before["Id"] and after["State"]["StartedAt"] == before["State"]["StartedAt"], (
        "the user's server kept running through the hub's restart"
    )
    # the next click is warm: written by the running server at once
    fresh = stack.token("alice", "alice-pw")
    dry, write = click(stack, fresh, "restart", f"after-{sig.name}.ipynb", "x = 2")
    assert dry.status_code == 200 and write.status_code == 200, write.text
    files = volume_notebooks("alice")
    assert f"restart/before-{sig.name}.ipynb" in files and f"restart/after-{sig.name}.ipynb" in files
    with login(stack, fresh, f"/user/alice/notebooks/restart/after-{sig.name}.ipynb") as (_, page):
        assert page.status_code == 200 and page.url.path.endswith(f"after-{sig.name}.ipynb")


def test_a_click_in_flight_when_the_hub_dies_gets_an_answer_and_the_next_works(stack):
    """SIGKILL while a cold launch is starting the server: the click was answered, its notebook is not lost,
    the next click works."""
    stack.standin.add_user("dora", "dora-pw")
    token = stack.token("dora", "dora-pw")
    dry, write = click(stack, token, "flight", "inflight.ipynb", "x = 1")
    assert dry.status_code == 200 and write.status_code == 200, write.text  # answered before the server is up
    restarts = hub_state(stack)["RestartCount"]
    os.kill(hub_state(stack)["State"]["Pid"], signal.SIGKILL)
    wait_for_hub_restart(stack, restarts)

    fresh = stack.token("dora", "dora-pw")
    stack.eln_create(fresh, "flight", "next.ipynb", "x = 2", user="dora")
    # the researcher's tab: the server may have asked the hub for its notebooks before this one reached
    # the hub (it was started by the launch the kill interrupted); the ELN's URL makes it take it
    with login(stack, fresh, "/user/dora/notebooks/flight/next.ipynb") as (_, page):
        assert page.status_code == 200 and page.url.path == "/user/dora/notebooks/flight/next.ipynb"
    files = volume_notebooks("dora")
    # the in-flight click's notebook too: the hub had kept it on its data volume before the click was answered
    assert {"flight/next.ipynb", "flight/inflight.ipynb"} <= set(files), sorted(files)
    for text in files.values():
        json.loads(text)  # whole, never half-written


def test_a_killed_proxy_is_restarted_with_its_routes(stack):
    token = stack.token("alice", "alice-pw")
    stack.eln_create(token, "proxy", "p.ipynb", "1")
    api_token = user_token_for(stack, token, "alice")
    wait_for_route(stack, "alice", api_token)
    proxy = proxy_pid(stack)
    assert proxy
    killed = time.monotonic()
    kill_in_hub(stack, proxy)  # the node process below it gets SIGTERM from the kernel (PDEATHSIG)
    deadline = time.monotonic() + 60
    while proxy_pid(stack) in (proxy, 0):
        assert time.monotonic() < deadline, f"the hub did not start a new proxy:\n{stack.logs()}"
        time.sleep(0.5)
    wait_for_route(stack, "alice", api_token)  # the hub restored the routes
    print(f"proxy killed: alice's route back after {time.monotonic() - killed:.1f} s")
    dry, write = click(stack, stack.token("alice", "alice-pw"), "proxy", "q.ipynb", "2")
    assert write.status_code == 200, write.text
    assert "proxy/q.ipynb" in volume_notebooks("alice")


def test_the_launch_service_killed_mid_write_is_restarted_and_leaves_no_half_notebook(stack):
    token = stack.token("alice", "alice-pw")
    stack.eln_create(token, "big", "warmup.ipynb", "1")
    service = process_in_hub(stack, "-m openbis_hub.service")
    # a large notebook (about 12 MB): the service reads, checks and writes it for a while
    big = notebook("x = 1")
    big["cells"][0]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": [f"{i:06d} {'y' * 110}\n" for i in range(100_000)]}
    ]
    body = json.dumps(big).encode()
    sent = threading.Event()

    def chunks():
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]
        sent.set()

    def post():
        url = f"{stack.url}/services/openbis/?token={token}&folder=big&filename=big.ipynb&test=False"
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": stack.standin.url}
        headers["Content-Length"] = str(len(body))
        try:
            with stack.client() as c:
                return c.post(url, content=chunks(), headers=headers)
        except httpx.HTTPError as e:
            return e

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post)
        assert sent.wait(60), "the body was not sent"
        killed = time.monotonic()
        kill_in_hub(stack, service)  # the whole body is with the service: it is reading or writing it
        result = answer.result(timeout=120)
    if isinstance(result, httpx.Response):
        # completed, or the proxy lost the service under it: the hub's error page, JSON for the services' URLs
        assert result.status_code in (200, 503), result.text[:500]
        assert "Traceback" not in result.text
        if result.status_code == 503:
            assert result.headers["content-type"].startswith("application/json"), result.text[:500]
            assert "Try again" in result.json()["message"]

    # the hub restarts its service (it polls its services every 30 s); the next click works
    deadline = time.monotonic() + 120
    while True:
        try:
            restarted = process_in_hub(stack, "-m openbis_hub.service")
        except AssertionError:
            restarted = service
        if restarted != service:
            break
        assert time.monotonic() < deadline, "the hub did not restart its launch service"
        time.sleep(0.5)
    deadline = time.monotonic() + 60
    while (r := stack.eln_post(token, "big", "after.ipynb", None)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)
    write = stack.eln_post(token, "big", "after.ipynb", notebook("2"))
    assert write.status_code == 200, write.text
    answered = result.status_code if isinstance(result, httpx.Response) else type(result).__name__
    print(
        f"service killed: in-flight write answered {answered}; clicks work again {time.monotonic() - killed:.1f} s after"
    )

    files = volume_notebooks("alice")
    assert "big/after.ipynb" in files
    print("service killed: the interrupted notebook is", "there, whole" if "big/big.ipynb" in files else "absent")
    if "big/big.ipynb" in files:  # complete, never truncated
        written = json.loads(files["big/big.ipynb"])
        assert written["cells"][-1]["outputs"] == big["cells"][0]["outputs"]
    assert not [p for p in files if p.startswith("big/") and ".~" in p], "no temporary file left behind"


# --- openBIS ------------------------------------------------------------------------


def test_openbis_down_slow_and_back(stack):
    """A click while openBIS is down or slow: a JSON error within the timeout; once it is back, the click works."""
    stack.eln_create(stack.token("bob", "bob-pw"), "ob", "first.ipynb", "1", user="bob")
    try:
        for mode in ("down", "slow"):
            stack.gate.set(mode, OPENBIS_TIMEOUT + 20)
            token = stack.token("bob", "bob-pw")  # new to the hub: it must ask openBIS
            started = time.monotonic()
            dry = stack.eln_post(token, "ob", f"{mode}.ipynb", None)
            took = time.monotonic() - started
            body = no_traceback(dry)
            assert dry.status_code in (502, 504), (mode, dry.status_code, body)
            assert "openBIS" in body["message"], body
            assert took < OPENBIS_TIMEOUT + 10, f"{mode}: answered after {took:.1f} s"
            print(f"openBIS {mode}: {dry.status_code} after {took:.1f} s: {body['message']}")
    finally:
        stack.gate.set("open")
    token = stack.token("bob", "bob-pw")
    dry, write = click(stack, token, "ob", "back.ipynb", "2")
    assert dry.status_code == 200 and write.status_code == 200, write.text
    assert "ob/back.ipynb" in volume_notebooks("bob")


# --- a full volume ------------------------------------------------------------------------


def test_a_full_volume_gives_clear_errors_and_keeps_what_was_saved(stack):
    user = "erin"
    stack.standin.add_user(user, "erin-pw")
    volume = volume_name(user, f"{PREFIX}-user")
    docker("volume", "rm", "-f", volume, check=False)
    # a small volume of its own: 8 MB of tmpfs, owned by the server's user
    docker(
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=8m,uid=1000,gid=100",
        volume,
    )
    token = stack.token(user, "erin-pw")
    stack.eln_create(token, "", "kept.ipynb", "kept = 1", user=user)
    kept = volume_notebooks(user)["kept.ipynb"]
    fill = docker(
        "exec", container_name(user, PREFIX), "dd", "if=/dev/zero", "of=/home/jovyan/work/fill", "bs=64k", check=False
    )
    assert "No space left" in fill.stderr, fill.stderr

    # the ELN's write: a JSON error saying why
    dry, write = click(stack, token, "", "new.ipynb", "new = 1")
    assert dry.status_code == 200, dry.text
    body = no_traceback(write)
    assert "space" in body["message"].lower(), body
    print(f"volume full: ELN write {write.status_code}: {body['message']}")

    # JupyterLab saving the open notebook, then Save to openBIS
    api_token = user_token_for(stack, token, user)
    changed = json.loads(kept)
    changed["cells"][0]["source"] = ["kept = 2\n" + "# " + "z" * 200_000]
    with stack.client(headers={"Authorization": f"token {api_token}"}) as c:
        put = c.put(
            f"{stack.url}/user/{user}/api/contents/kept.ipynb",
            json={"type": "notebook", "format": "json", "content": changed},
        )
        assert "No space left on device" in no_traceback(put, ours=False)["message"]
        save = c.post(
            f"{stack.url}/user/{user}/openbis/save",
            json={"path": "kept.ipynb", "owner": {"object": "/DEMO/ANALYSIS/STEP1"}, "name": "full volume"},
        )
    if save.status_code != 200:
        no_traceback(save, ours=False)
    print(f"volume full: JupyterLab save {put.status_code}; Save to openBIS {save.status_code}: {save.text[:300]}")
    assert volume_notebooks(user)["kept.ipynb"] == kept, "what was saved before is unchanged"

    # space again: the same write works
    exec_rm = docker("exec", container_name(user, PREFIX), "rm", "/home/jovyan/work/fill", check=False)
    assert exec_rm.returncode == 0, exec_rm.stderr
    dry, write = click(stack, token, "", "new.ipynb", "new = 1")
    assert write.status_code == 200, write.text


# --- a burst beyond the hub's concurrent_spawn_limit ---------------------------------------


def test_clicks_beyond_the_spawn_limit_wait_in_order_and_all_open(stack):
    users = [f"q{i}" for i in range(SPAWN_LIMIT + 3)]
    tokens = {}
    for user in users:
        stack.standin.add_user(user, f"{user}-pw")
        tokens[user] = stack.token(user, f"{user}-pw")
    for user in users:  # one after the other: the arrival order is known
        started = time.monotonic()
        dry, write = click(stack, tokens[user], "burst", "b.ipynb", f"user = {user!r}")
        assert dry.status_code == 200 and write.status_code == 200, (user, write.text)
        assert time.monotonic() - started < 5, "the click answers within the popup window"
    for user in users:
        stack.wait_for_server(tokens[user], user)
        with login(stack, tokens[user], f"/user/{user}/notebooks/burst/b.ipynb") as (_, page):
            assert page.status_code == 200, (user, page.status_code)
        assert "burst/b.ipynb" in volume_notebooks(user)
    logs = stack.compose("logs", "--no-color", "hub", check=False).stdout
    assert "pending spawns, throttling" in logs, "the hub did refuse starts (429)"
    queued = [u for u in users if f"Started the server of {u} after" in logs]
    assert queued, "some starts waited in the queue"
    order = sorted(queued, key=lambda u: logs.index(f"Started the server of {u} after"))
    assert order == [u for u in users if u in queued], "the queue started them in arrival order"
