"""The launch service's rules, fast: its real tornado app in this process, the hub behind an httpx.MockTransport.

The fake answers like JupyterHub's REST API and single-user contents API do
(the shapes are from ``../shared/reference/jupyterhub-api-and-deployment.md``)
and records every request, so the tests can say who was asked what, and with
which credential.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from openbis_hub.service.app import OpenBISService

from inprocess import listen_on_loopback

SERVICE_TOKEN = "service-token-0123456789abcdef"
ELN = "https://openbis.example.org"


class FakeHub:
    """JupyterHub and its users' servers, as an httpx transport."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.files: dict[tuple[str, str], dict] = {}
        self.minted: dict[str, tuple[str, list]] = {}  # token -> (owner, scopes)
        self.refreshed: list[str] = []
        self.stopped: set[str] = set()  # users whose server is not running
        self.starting: set[str] = set()
        self.restarting: dict[str, str] = {}  # user -> how their listed-as-ready server fails: "html" or "refused"
        self.pending: dict[str, list[dict]] = {}
        self.types: httpx.Response | None = None  # what the user's server answers for openbis/types
        self.placed: list[dict] = []
        self.transport = httpx.MockTransport(self.handle)

    def calls(self, method: str, part: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and part in r.url.path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        auth = request.headers.get("Authorization", "")
        if path.startswith("/hub/api/"):
            if auth != f"token {SERVICE_TOKEN}":
                return httpx.Response(403, json={"message": "Missing or invalid credentials."})
            return self.hub_api(request, path[len("/hub/api") :])
        if path.startswith("/user/"):
            name, _, rest = path[len("/user/") :].partition("/")
            owner, scopes = self.minted.get(auth.partition(" ")[2], (None, []))
            if owner != name or scopes != [f"access:servers!user={name}"]:
                return httpx.Response(403, json={"message": "Forbidden"})
            return self.server_api(request, name, rest)
        return httpx.Response(404, json={"message": "Not found"})

    def hub_api(self, request, path):
        if path == "/openbis/users":
            token = json.loads(request.content)["token"]
            if token.startswith("good-"):
                return httpx.Response(200, json={"name": token.split("-")[1], "created": False})
            if token.startswith("down-"):
                return httpx.Response(502, json={"message": "openBIS is unreachable."})
            return httpx.Response(401, json={"message": "The openBIS token is not valid."})
        parts = path.strip("/").split("/")
        if parts[:2] == ["openbis", "pending"] and len(parts) == 3:
            self.pending.setdefault(parts[2], []).append(json.loads(request.content))
            return httpx.Response(202, json={})
        if parts[0] == "users" and len(parts) == 2:
            if parts[1] in self.stopped:
                starting = {"ready": False, "pending": "spawn"} if parts[1] in self.starting else None
                return httpx.Response(200, json={"name": parts[1], "servers": {"": starting} if starting else {}})
            return httpx.Response(200, json={"name": parts[1], "servers": {"": {"ready": True, "started": "t"}}})
        if parts[0] == "users" and parts[2:] == ["server"] and request.method == "POST":
            self.starting.add(parts[1])
            return httpx.Response(202)
        if parts[0] == "users" and parts[2:] == ["server", "progress"]:
            return httpx.Response(400, json={"message": "not starting"})
        if parts[0] == "users" and parts[2:] == ["tokens"]:
            body = json.loads(request.content)
            token = f"user-token-{parts[1]}-{len(self.minted)}"
            self.minted[token] = (parts[1], body["scopes"])
            return httpx.Response(201, json={"token": token, "expires_at": "later", "scopes": body["scopes"]})
        return httpx.Response(404, json={"message": "Not found"})

    def server_api(self, request, name, rest):
        if self.restarting.get(name) == "refused":  # the service reaches the server directly: nothing listens
            raise httpx.ConnectError("Connection refused", request=request)
        if self.restarting.get(name) == "html":  # through the proxy: the hub's error page answers in its place
            return httpx.Response(503, headers={"Content-Type": "text/html"}, text="<html>503 Service Unavailable")
        if rest == "openbis/pending":
            taken = self.pending.pop(name, [])
            self.placed += taken
            return httpx.Response(
                200, json={"placed": [{"requested": n["fileName"], "path": n["fileName"]} for n in taken]}
            )
        if rest == "openbis/types":
            return self.types or httpx.Response(404, json={"message": "Not found"})
        if rest == "openbis/token":
            self.refreshed.append(name)
            return httpx.Response(200, json={"changed": True, "has_token": True})
        if rest.startswith("api/contents"):
            path = rest[len("api/contents") :].strip("/")
            key = (name, path)
            if request.method == "PUT":
                model = json.loads(request.content)
                self.files[key] = model
                return httpx.Response(200, json={"name": path.rpartition("/")[2], "path": path, "type": model["type"]})
            if key not in self.files:
                if path == "":
                    return httpx.Response(200, json={"type": "directory", "content": []})
                return httpx.Response(404, json={"message": "No such file"})
            model = self.files[key]
            if model["type"] == "directory":
                names = [p.rpartition("/")[2] for (n, p) in self.files if n == name and p.rpartition("/")[0] == path]
                return httpx.Response(200, json={"type": "directory", "content": [{"name": x} for x in names]})
            return httpx.Response(200, json={**model, "path": path})
        return httpx.Response(404, json={"message": "Not found"})


@pytest.fixture
async def service():
    """The service's real tornado app on a loopback port of this process, the fake hub behind it."""
    fake = FakeHub()
    app = OpenBISService(
        hub_api_url="http://hub.test/hub/api",
        api_token=SERVICE_TOKEN,
        proxy_url="http://proxy.test",
        eln_origins=[ELN],
        openbis_url=ELN,
        refused_token_limit=3,
        body_timeout=0.5,
    )
    web_app = app.make_app(transport=fake.transport)
    server = app.make_server(web_app)
    port = listen_on_loopback(server)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/services/openbis", timeout=10) as client:
        yield fake, client, port
    server.stop()
    await app.hub.aclose()


def eln(token, folder="f", filename="n.ipynb", test=True):
    return f"/?token={token}&folder={folder}&filename={filename}&test={test}"


def notebook(file_name=None):
    cells = []
    if file_name is not None:
        cells.append(
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {"code_cell_id": "fileName"},
                "outputs": [],
                "source": [f"fileName={file_name!r}"],
            }
        )
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


async def test_only_the_users_own_narrow_token_reaches_their_server(service):
    fake, client, _ = service
    r = await client.post(eln("good-alice"), content=b"TEST")
    assert r.status_code == 200, r.text
    r = await client.post(eln("good-alice", test=False), content=json.dumps(notebook("n.ipynb")))
    assert r.status_code == 200, r.text
    to_servers = [req for req in fake.requests if req.url.path.startswith("/user/")]
    assert to_servers
    for req in to_servers:
        token = req.headers["Authorization"].partition(" ")[2]
        assert token != SERVICE_TOKEN
        assert fake.minted[token] == ("alice", ["access:servers!user=alice"])
    assert len(fake.calls("POST", "/tokens")) == 1, "one minted token serves the whole click"
    assert len(fake.calls("POST", "/openbis/users")) == 1, "the token is checked once per click"


async def test_foreign_origin_is_refused_before_anything(service):
    fake, client, _ = service
    r = await client.post(eln("good-alice"), content=b"TEST", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "OPENBIS_HUB_ELN_ORIGINS" in r.json()["message"]
    assert fake.requests == [], "no hub user synced, no server started"
    r = await client.post(eln("good-alice"), content=b"TEST", headers={"Origin": ELN})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ELN


async def test_a_bad_token_is_refused_before_the_body_is_read(service):
    """A 16 MiB body with a bogus token: the answer comes while most of the body is still unsent."""
    _, _, port = service
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = 16 * 1024 * 1024
    writer.write(
        (
            f"POST /services/openbis/?token=bogus&folder=f&filename=n.ipynb&test=False HTTP/1.1\r\n"
            f"Host: x\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        + b"{" * 1024
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 401")
    writer.close()


async def test_refused_tokens_are_remembered_per_client(service):
    fake, client, _ = service
    for _ in range(2):
        assert (await client.post(eln("bad-same"), content=b"TEST")).status_code == 401
    assert len(fake.calls("POST", "/openbis/users")) == 1, "a refused token is refused from memory"
    for i in range(2):
        assert (await client.post(eln(f"bad-{i}"), content=b"TEST")).status_code == 401
    r = await client.post(eln("bad-next"), content=b"TEST")
    assert r.status_code == 429
    assert r.headers["Retry-After"]
    assert len(fake.calls("POST", "/openbis/users")) == 3, "past the limit nobody is asked"


async def test_forwarded_for_counts_only_from_a_trusted_proxy(service):
    """The test client is on loopback, a trusted proxy: X-Forwarded-For names the client."""
    _, client, _ = service
    for i in range(3):
        r = await client.post(eln(f"bad-a{i}"), content=b"TEST", headers={"X-Forwarded-For": "10.0.0.1"})
        assert r.status_code == 401
    assert (
        await client.post(eln("bad-a3"), content=b"TEST", headers={"X-Forwarded-For": "10.0.0.1"})
    ).status_code == 429
    r = await client.post(eln("bad-b"), content=b"TEST", headers={"X-Forwarded-For": "10.0.0.2"})
    assert r.status_code == 401, "another client behind the proxy is not punished"


async def test_client_address_ignores_forwarded_headers_from_untrusted_peers(service):
    fake, client, port = service
    from openbis_hub.service.handlers import BaseHandler

    class Request:
        remote_ip = "192.0.2.7"
        headers = {"X-Forwarded-For": "10.9.9.9", "X-Real-Ip": "10.8.8.8"}

    handler = BaseHandler.__new__(BaseHandler)
    handler.request = Request()
    handler.application = type("App", (), {"settings": {"trusted_proxies": {"127.0.0.1"}}})()
    assert handler.client_address == "192.0.2.7"
    handler.application.settings["trusted_proxies"] = {"192.0.2.7"}
    assert handler.client_address == "10.9.9.9"
    # behind a reverse proxy (10.9.9.9) that the admin listed: the address it saw
    handler.request.headers = {"X-Forwarded-For": "203.0.113.5, 10.9.9.9"}
    assert handler.client_address == "10.9.9.9"
    handler.application.settings["trusted_proxies"] = {"192.0.2.7", "10.9.9.9"}
    assert handler.client_address == "203.0.113.5"


async def test_openbis_down_is_502_and_not_remembered(service):
    fake, client, _ = service
    for _ in range(2):
        r = await client.post(eln("down-alice"), content=b"TEST")
        assert r.status_code == 502
        assert "unreachable" in r.json()["message"]
    assert len(fake.calls("POST", "/openbis/users")) == 2


async def test_each_write_takes_its_own_dry_runs_name(service):
    """Two clicks with the same name whose writes arrive in reverse order keep their own notebooks."""
    fake, client, _ = service
    first = (await client.post(eln("good-alice"), content=b"TEST")).json()["fileName"]
    second = (await client.post(eln("good-alice"), content=b"TEST")).json()["fileName"]
    assert (first, second) == ("n.ipynb", "n 2.ipynb")
    r = await client.post(eln("good-alice", test=False), content=json.dumps(notebook(second)))
    assert r.json()["fileName"] == second
    r = await client.post(eln("good-alice", test=False), content=json.dumps(notebook(first)))
    assert r.json()["fileName"] == first


async def test_new_token_makes_a_running_server_read_auth_state_again(service):
    fake, client, _ = service
    await client.post(eln("good-alice-1"), content=b"TEST")
    assert fake.refreshed == ["alice"]
    await client.post(eln("good-alice-1"), content=b"TEST")
    assert fake.refreshed == ["alice"], "the same token again: nothing to read"
    await client.post(eln("good-alice-2"), content=b"TEST")
    assert fake.refreshed == ["alice", "alice"]
    refresh = [r for r in fake.requests if r.url.path.endswith("/openbis/token")]
    assert all(r.content in (b"", None) for r in refresh), "no token travels with the refresh"


@pytest.mark.parametrize(
    "body, words",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            json.dumps(
                {
                    "a": [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                                            1
                                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                }
            ).encode(),
            "nested too deeply",
        ),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
    ],
)
async def test_bad_json_bodies_are_400(service, body, words):
    _, client, _ = service
    r = await client.post("/api/notebooks", content=body, headers={"Authorization": "Bearer good-alice"})
    assert r.status_code == 400, r.text
    assert words in r.json()["message"]


async def test_crafted_owner_never_becomes_code(service):
    fake, client, _ = service
    owner = {"object": "x'); import os; os.system('id'); ('"}
    r = await client.post("/api/notebooks", json={"owner": owner}, headers={"Authorization": "Bearer good-alice"})
    assert r.status_code == 400
    assert not fake.calls("PUT", "/api/contents"), "nothing written"


async def test_too_many_datasets_are_refused(service):
    _, client, _ = service
    datasets = [f"20260101000000000-{i}" for i in range(101)]
    r = await client.post(
        "/api/notebooks",
        json={"owner": {"object": "/S/O"}, "datasets": datasets},
        headers={"Authorization": "Bearer good-alice"},
    )
    assert r.status_code == 400
    assert "100" in r.json()["message"]


async def test_export_never_replaces_a_script_of_the_users_own(service):
    fake, client, _ = service
    auth = {"Authorization": "Bearer good-alice"}
    fake.files[("alice", "a.py")] = {"type": "file", "format": "text", "content": "print('mine')\n"}
    r = await client.put("/api/notebooks/a.ipynb", json={"content": notebook(), "export": True}, headers=auth)
    assert r.status_code == 409, r.text
    assert ("alice", "a.ipynb") not in fake.files, "nothing written at all"
    assert fake.files[("alice", "a.py")]["content"] == "print('mine')\n"
    r = await client.put("/api/notebooks/b.ipynb", json={"content": notebook(), "export": True}, headers=auth)
    assert r.status_code == 200, r.text
    r = await client.put("/api/notebooks/b.ipynb", json={"content": notebook(), "export": True}, headers=auth)
    assert r.status_code == 200, "an earlier export of the same notebook is replaced"


async def test_errors_never_carry_the_token(service):
    _, client, _ = service
    token = "secret-token-that-openbis-refused"
    r = await client.post(eln(token), content=b"TEST")
    assert r.status_code == 401
    assert token not in r.text


async def test_a_refusal_before_the_body_closes_the_connection_honestly(service):
    """tornado drops a connection whose body it did not read; the answer says so, or a proxy reuses it."""
    _, client, _ = service
    r = await client.get("/api/notebooks/a.ipynb")
    assert r.status_code == 401
    assert r.headers["Connection"] == "close"
    for _ in range(3):  # the next requests on a fresh connection work
        assert (await client.put("/api/notebooks/a.ipynb")).status_code == 401


async def test_a_cold_click_answers_without_waiting_and_hands_the_notebook_to_the_hub(service):
    fake, client, _ = service
    fake.stopped.add("alice")
    dry = await client.post(eln("good-alice"), content=b"TEST")
    assert dry.status_code == 200 and dry.json()["fileName"] == "n.ipynb"
    assert fake.calls("POST", "/users/alice/server"), "the server is started"
    assert not [r for r in fake.requests if r.url.path.startswith("/user/")], "nothing waits for the server"
    nb = notebook("n.ipynb")
    write = await client.post(eln("good-alice", test=False), content=json.dumps(nb))
    assert write.status_code == 200 and write.json()["fileName"] == "n.ipynb"
    [queued] = fake.pending["alice"]
    assert (queued["folder"], queued["fileName"]) == ("f", "n.ipynb")
    assert queued["content"]["cells"] == nb["cells"]
    assert ("alice", "f/n.ipynb") not in fake.files, "the server places it, not the service"


@pytest.mark.parametrize("failure", ["html", "refused"])
async def test_a_click_while_the_listed_server_restarts_goes_on_as_a_cold_click(service, failure):
    """The hub still lists the server as ready while its container restarts: no 502, the hub keeps the notebook."""
    fake, client, _ = service
    fake.restarting["alice"] = failure
    dry = await client.post(eln("good-alice"), content=b"TEST")
    assert dry.status_code == 200 and dry.json()["fileName"] == "n.ipynb", dry.text
    write = await client.post(eln("good-alice", test=False), content=json.dumps(notebook("n.ipynb")))
    assert write.status_code == 200 and write.json()["fileName"] == "n.ipynb", write.text
    assert [n["fileName"] for n in fake.pending["alice"]] == ["n.ipynb"], "waits at the hub for the server"
    assert ("alice", "f/n.ipynb") not in fake.files
    del fake.restarting["alice"]  # back: the service's follow-up tells it to take the notebook
    for _ in range(100):
        if fake.placed:
            break
        await asyncio.sleep(0.05)
    assert [n["fileName"] for n in fake.placed] == ["n.ipynb"]


async def test_a_write_after_a_blind_dry_run_goes_through_the_server_even_once_it_is_up(service):
    """The dry run could not see the folder: the server must place the notebook (renaming on a clash)."""
    fake, client, _ = service
    fake.stopped.add("alice")
    await client.post(eln("good-alice"), content=b"TEST")
    fake.stopped.discard("alice")  # the server came up between the two POSTs
    write = await client.post(eln("good-alice", test=False), content=json.dumps(notebook("n.ipynb")))
    assert write.status_code == 200
    assert [n["fileName"] for n in fake.placed] == ["n.ipynb"], "placed by the server, now"
    assert ("alice", "f/n.ipynb") not in fake.files


async def test_two_blind_dry_runs_get_distinct_names_and_keep_them(service):
    fake, client, _ = service
    fake.stopped.add("alice")
    first = (await client.post(eln("good-alice"), content=b"TEST")).json()["fileName"]
    second = (await client.post(eln("good-alice"), content=b"TEST")).json()["fileName"]
    assert (first, second) == ("n.ipynb", "n 2.ipynb")
    for name in (second, first):
        await client.post(eln("good-alice", test=False), content=json.dumps(notebook(name)))
    assert [n["fileName"] for n in fake.pending["alice"]] == [second, first]


async def test_a_body_that_never_arrives_times_out(service):
    """A client that sends a good token and then dribbles (or stalls) its body is cut off."""
    _, _, port = service
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /services/openbis/?token=good-alice&folder=f&filename=n.ipynb&test=False HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b"", "closed without an answer, not held open"
    writer.close()


async def test_an_endless_answer_from_a_users_server_is_cut_off():
    """A user's server is the user's: the service reads at most max_answer_bytes of what it says."""
    from openbis_hub.errors import HubAPIError
    from openbis_hub.service.hub import HubAPI

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self):
            while True:
                yield b"x" * 65536

    def handle(request):
        if request.url.path.startswith("/hub/api/"):
            return httpx.Response(201, json={"token": "t"})
        return httpx.Response(200, stream=Endless())

    hub = HubAPI(
        "http://hub.test/hub/api",
        SERVICE_TOKEN,
        "http://proxy.test",
        max_answer_bytes=1 << 20,
        transport=httpx.MockTransport(handle),
    )
    with pytest.raises(HubAPIError) as caught:
        await hub.server_request("alice", "GET", "api/contents/x")
    assert caught.value.status == 502 and "1 MiB" in caught.value.message
    await hub.aclose()


def _analysis_notebook(*codes: str) -> httpx.Response:
    properties = [{"code": c, "mandatory": False} for c in codes]
    return httpx.Response(
        200,
        json={
            "types": [{"code": "RAW_DATA", "properties": []}, {"code": "ANALYSIS_NOTEBOOK", "properties": properties}]
        },
    )


@pytest.mark.parametrize(
    ("types", "props"),
    [
        (_analysis_notebook("$NAME", "NOTES", "$HISTORY_ID"), "'$name'"),  # openBIS 20.10
        (_analysis_notebook("NAME", "NOTES", "HISTORY_ID"), "'name'"),  # openBIS 6 and 7
        (httpx.Response(502, json={"message": "openBIS is unreachable."}), "'$name'"),  # unknown: the ELN's classic
        (None, "'$name'"),  # a server without the openbis-hub extension
    ],
    ids=["20.10", "6-and-7", "openbis-down", "no-extension"],
)
async def test_the_built_notebooks_save_cell_names_properties_as_this_openbis_does(service, types, props):
    fake, client, _ = service
    fake.types = types
    r = await client.post(
        "/api/notebooks", json={"owner": {"object": "/S/P/O1"}}, headers={"Authorization": "Bearer good-alice"}
    )
    assert r.status_code == 201, r.text
    (key,) = [k for k in fake.files if k[1].endswith(".ipynb")]
    sources = ["".join(c["source"]) for c in fake.files[key]["content"]["cells"]]
    (save,) = [src for src in sources if "props=" in src]
    assert f"props={{{props}: resultDatasetName" in save
    assert ("'history_id'" in save) == (props == "'name'") and ("'$history_id'" in save) == (props == "'$name'")
