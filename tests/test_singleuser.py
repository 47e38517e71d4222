"""The single-user server extension, against a real ``jupyter server`` and the openBIS stand-in.

One notebook server (a subprocess, as root with ``--allow-root``) runs for the
module with its own HOME and root dir, ``OPENBIS_URL``/``OPENBIS_CA_BUNDLE``
pointing at a private https stand-in (started with ``RAW_DATA:NOTES``
mandatory), and a stand-in of the Hub API answering ``GET /users/alice`` with
the auth_state the server reads its openBIS token from.
The test that expires alice's sessions gives the server a fresh token afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from openbis_hub.eln_template import defaults_from_notebook  # noqa: E402

from hub import free_port  # noqa: E402
from standin import start_standin  # noqa: E402

SERVER_TOKEN = "singleuser-test-" + uuid.uuid4().hex
HUB_API_TOKEN = "hub-api-" + uuid.uuid4().hex
FRAME_ANCESTORS = "https://eln.example.org https://openbis.example.org:8443"
COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"
OBJECT = "/DEMO/ANALYSIS/STEP1"
# the JupyterLab extension as jlpm build:prod leaves it (singleuser/labextension/package.json)
LABEXTENSION = Path(__file__).resolve().parent.parent / "singleuser" / "openbis_hub_singleuser" / "labextension"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    s = start_standin(tmp_path_factory.mktemp("standin-singleuser"), extra_args=["--mandatory", "RAW_DATA:NOTES"])
    try:
        yield s
    finally:
        s.stop()


def login(standin, user: str) -> str:
    answer = standin.rpc("login", user, f"{user}-pw")
    assert answer.get("result"), answer
    return answer["result"]


class FakeHub:
    """``GET /users/alice`` as the hub answers the server's own API token (with auth_state)."""

    def __init__(self):
        self.auth_state = None
        self.requests = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.requests += 1
                if self.headers.get("Authorization") != f"token {HUB_API_TOKEN}":
                    self.send_response(403)
                    self.end_headers()
                    return
                if not self.path.endswith("/hub/api/users/alice"):
                    self.send_response(404)
                    self.end_headers()
                    return
                model = {"name": "alice", "kind": "user"}
                if hub.auth_state is not None:
                    model["auth_state"] = hub.auth_state
                body = json.dumps(model).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


class NotebookServer:
    def __init__(self, url, home: Path, root: Path, proc, log: Path, openbis_token: str):
        self.url = url
        self.home = home
        self.root = root
        self.proc = proc
        self.log = log
        self.openbis_token = openbis_token
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"token {SERVER_TOKEN}"}, timeout=120)

    def token_file(self, openbis_url: str) -> Path:
        return self.home / ".pybis" / f"{urlsplit(openbis_url).hostname}.token"

    def stop(self):
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def put_notebook(self, path: str, nb: dict):
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            r = self.http.put(f"/api/contents/{parent}", json={"type": "directory"})
            assert r.status_code in (200, 201), r.text
        r = self.http.put(f"/api/contents/{path}", json={"type": "notebook", "format": "json", "content": nb})
        assert r.status_code in (200, 201), r.text


class ParentPage:
    """An "openBIS ELN" page at its own origin that frames the notebook server."""

    def __init__(self):
        self.html = b""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page.html)))
                self.end_headers()
                self.wfile.write(page.html)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def parent_page():
    p = ParentPage()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def fake_hub():
    h = FakeHub()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def server(standin, fake_hub, parent_page, tmp_path_factory):
    base = tmp_path_factory.mktemp("singleuser")
    home, root = base / "home", base / "root"
    home.mkdir()
    root.mkdir()
    token = login(standin, "alice")
    fake_hub.auth_state = {"openbis_token": token, "notebook_token": token}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "OPENBIS", "REQUESTS_CA"))},
        "HOME": str(home),
        "OPENBIS_URL": standin.url,
        "OPENBIS_CA_BUNDLE": standin.ca_file,
        "OPENBIS_HUB_FRAME_ANCESTORS": f"{FRAME_ANCESTORS} {parent_page.origin}",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_API_URL": fake_hub.url,
        "JUPYTERHUB_API_TOKEN": HUB_API_TOKEN,
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "PYTHONUNBUFFERED": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    built = LABEXTENSION
    if (built / "package.json").exists():  # the labextension, for the browser tests
        (base / "data" / "labextensions").mkdir(parents=True)
        (base / "data" / "labextensions" / "openbis-hub").symlink_to(built)
    s = launch_server(base, env, home, root, token)
    try:
        yield s
    finally:
        s.stop()
        # the token must never reach the server's log
        assert token not in s.log.read_text(errors="replace")


def launch_server(base: Path, env: dict, home: Path, root: Path, token: str, extra_args=()) -> NotebookServer:
    port = free_port()
    log = base / "server.log"
    cmd = [
        sys.executable, "-m", "jupyter_server",
        "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.token={SERVER_TOKEN}", f"--ServerApp.root_dir={root}",
        "--ServerApp.jpserver_extensions={'openbis_hub_singleuser': True}",
        "--OpenBISServerExtension.token_refresh_interval=0.5",
        *extra_args,
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/status", headers={"Authorization": f"token {SERVER_TOKEN}"}).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("jupyter server did not start:\n" + log.read_text(errors="replace")[-4000:])
        time.sleep(0.2)
    return NotebookServer(url, home, root, proc, log, token)


def eln_template(file_name: str, parents: list[str], owner: str, history_id: str, owner_kind="object") -> dict:
    """The ELN's "New Jupyter notebook" template (JupyterUtil.createJupyterNotebookContent), abridged."""

    def md(text):
        return {"cell_type": "markdown", "metadata": {}, "source": [text]}

    def code(source, cell_id=None):
        return {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"collapsed": False, "code_cell_id": cell_id},
            "outputs": [],
            "source": source,
        }

    getter = "get_object" if owner_kind == "object" else "get_experiment"
    keyword = "sample" if owner_kind == "object" else "experiment"
    return {
        "nbformat": 4,
        "nbformat_minor": 2,
        "metadata": {
            "autogenerated_by_openbis": True,
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        },
        "cells": [
            md("# Jupyter notebook title, modify me!\n"),
            md("Description : fileName variable, indicates the name of the document to save"),
            code(f"fileName='{file_name}'", "fileName"),
            code("resultDatasetParents=" + json.dumps(parents), "resultDatasetParents"),
            code(f"resultDatasetHistoryId='{history_id}'", "resultDatasetHistoryId"),
            code("resultDatasetName='Name your dataset!'", "resultDatasetName"),
            code("resultDatasetNotes='Write some notes or leave empty this property!'", "resultDatasetNotes"),
            md("## Connect to openBIS"),
            code(["from pybis import Openbis\n", "o = Openbis()"]),
            md("Sets the owner of the result dataset"),
            code([f"owner= o.{getter}('{owner}'),\n", "owner"]),
            md("Creates the result dataset"),
            code(
                [
                    "ds_new = o.new_dataset(\n",
                    "type='ANALYSIS_NOTEBOOK',\n",
                    f"{keyword}= o.{getter}('{owner}'),\n",
                    "parents=resultDatasetParents,\n",
                    "files = [fileName, fileName + '.html'],\n",
                    "props={'$name': resultDatasetName, 'notes': resultDatasetNotes, "
                    "'$history_id' : resultDatasetHistoryId })\n",
                    "ds_new.save()",
                ]
            ),
        ],
    }


@pytest.fixture(scope="module")
def parents(standin):
    return sorted(d["permId"] for d in standin.datasets() if d["type"] == "RAW_DATA")[:2]


# --------------------------------------------------------------------------- unit: template parsing


def test_defaults_from_template_cells_never_exec():
    nb = eln_template("a.ipynb", ["20240101120000000-1"], OBJECT, "hid-1")
    nb["cells"][5]["source"] = "resultDatasetName='My analysis'"
    nb["cells"].append(
        {"cell_type": "code", "metadata": {"code_cell_id": "resultDatasetNotes"}, "source": "__import__('os')"}
    )
    defaults = defaults_from_notebook(nb)
    assert defaults["owner"] == {"object": OBJECT}
    assert defaults["parents"] == ["20240101120000000-1"]
    assert defaults["history_id"] == "hid-1"
    assert defaults["name"] == "My analysis"
    assert defaults["notes"] is None  # placeholder, and a non-literal is never evaluated
    assert defaults["type"] == "ANALYSIS_NOTEBOOK"

    exp = eln_template("b.ipynb", [], COLLECTION, "hid-2", owner_kind="experiment")
    assert defaults_from_notebook(exp)["owner"] == {"experiment": COLLECTION}

    plain = {"cells": [], "metadata": {"openbis": {"owner": {"collection": COLLECTION}, "parents": "X-1"}}}
    assert defaults_from_notebook(plain)["owner"] == {"experiment": COLLECTION}
    assert defaults_from_notebook(plain)["parents"] == ["X-1"]


# --------------------------------------------------------------------------- integration


def test_token_file_written_private(server, standin):
    path = server.token_file(standin.url)
    assert path.read_text() == server.openbis_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ":" not in path.name  # no port in the name, as pybis expects


def test_csp_and_iframe_cookies(server):
    r = server.http.get("/api/status")
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors 'self' " + FRAME_ANCESTORS)
    # static and HTML pages too, not only API handlers
    r = server.http.get("/openbis/config")
    assert r.json()["frame_ancestors"][:2] == FRAME_ANCESTORS.split()
    r = server.http.get("/no/such/page")
    assert r.status_code == 404
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors 'self' " + FRAME_ANCESTORS)
    auth = {"Authorization": f"token {SERVER_TOKEN}"}
    r = httpx.get(server.url + "/lab", headers={**auth, "X-Forwarded-Proto": "https"})
    assert "frame-ancestors 'self' https://eln.example.org" in r.headers["Content-Security-Policy"]
    cookies = r.headers.get_list("set-cookie")
    assert cookies and all("SameSite=None" in c and "Secure" in c for c in cookies)
    # plain http: cookies keep their defaults
    r = httpx.get(server.url + "/lab", headers=auth)
    assert r.headers.get_list("set-cookie")
    assert not any("SameSite=None" in c for c in r.headers.get_list("set-cookie"))


def test_requires_authentication(server):
    r = httpx.put(server.url + "/openbis/token", json={"token": "x"})
    assert r.status_code in (401, 403)
    r = httpx.post(server.url + "/openbis/save", json={"path": "x.ipynb"})
    assert r.status_code in (401, 403)


async def test_kernel_uses_pybis_without_password(server, standin, parents):
    """``Openbis()`` in a kernel started by the server: URL from env, token file, CA via REQUESTS_CA_BUNDLE."""
    from tornado.websocket import websocket_connect

    r = server.http.post("/api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    code = (
        "from pybis import Openbis\n"
        "o = Openbis()\n"
        f"ds = o.get_dataset('{parents[0]}')\n"
        "print('PERMID', ds.permId, 'TOKEN_FROM_FILE', o.token == open(o.gen_token_path()).read())\n"
    )
    ws_url = server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(
        __import__("tornado.httpclient").httpclient.HTTPRequest(
            ws_url, headers={"Authorization": f"token {SERVER_TOKEN}"}
        )
    )
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                           "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False},
            }
        )
    )  # fmt: skip
    out, status = [], None
    deadline = time.monotonic() + 120
    while status is None and time.monotonic() < deadline:
        raw = await asyncio.wait_for(ws.read_message(), timeout=120)
        assert raw is not None, "kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
    ws.close()
    server.http.delete(f"/api/kernels/{kernel_id}")
    text = "".join(out)
    assert status == "ok", text
    assert f"PERMID {parents[0]} TOKEN_FROM_FILE True" in text


def test_token_refreshed_from_auth_state_on_request(server, standin, fake_hub):
    """``POST openbis/token`` carries nothing: the server reads its owner's auth_state from the hub."""
    path = server.token_file(standin.url)
    r = httpx.post(server.url + "/openbis/token")
    assert r.status_code == 403, "only the owner (or a token for this server) may ask"

    r = server.http.post("/openbis/token")
    assert r.status_code == 200, r.text
    assert r.json() == {"changed": False, "has_token": True}
    assert server.http.put("/openbis/token", json={"token": "x"}).status_code == 405, "no token is accepted"

    fresh = login(standin, "alice")
    fake_hub.auth_state = {"openbis_token": fresh, "notebook_token": fresh}
    r = server.http.post("/openbis/token")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True
    assert fresh not in r.text
    assert path.read_text() == fresh
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    server.openbis_token = fresh


def test_personal_access_token_stays_after_refreshes(server, standin, fake_hub):
    """PAT mode: auth_state's notebook_token (the PAT) is what pybis gets, not the short session token."""
    path = server.token_file(standin.url)
    session = login(standin, "alice")
    pat = "$pat-alice-" + uuid.uuid4().hex
    fake_hub.auth_state = {"openbis_token": session, "notebook_token": pat}
    assert server.http.post("/openbis/token").json()["changed"] is True
    seen = fake_hub.requests
    deadline = time.monotonic() + 10
    while fake_hub.requests < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake_hub.requests >= seen + 2, "the server does not poll the hub"
    assert path.read_text() == pat
    fake_hub.auth_state = {"openbis_token": server.openbis_token, "notebook_token": server.openbis_token}
    assert server.http.post("/openbis/token").json()["changed"] is True


def test_token_pulled_from_hub_auth_state(server, standin, fake_hub):
    path = server.token_file(standin.url)
    seen = fake_hub.requests
    deadline = time.monotonic() + 10
    while fake_hub.requests < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake_hub.requests >= seen + 2, "the server does not poll the hub"
    assert path.read_text() == server.openbis_token  # auth_state unchanged: nothing changes

    fresh = login(standin, "alice")
    fake_hub.auth_state = {"openbis_token": fresh, "notebook_token": fresh}
    deadline = time.monotonic() + 10
    while path.read_text() != fresh and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.read_text() == fresh
    server.openbis_token = fresh

    # a token the researcher set in a kernel themselves stays until the hub has a new one
    own = login(standin, "alice")
    path.write_text(own)
    seen = fake_hub.requests
    deadline = time.monotonic() + 10
    while fake_hub.requests < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.read_text() == own
    path.write_text(fresh)


def _dataset(standin, perm_id):
    matches = [d for d in standin.datasets() if d["permId"] == perm_id]
    assert matches, f"{perm_id} not in the stand-in"
    return matches[0]


def test_save_template_notebook(server, standin, parents):
    history_id = str(uuid.uuid4())
    nb = eln_template("analysis.ipynb", parents, OBJECT, history_id)
    nb["cells"][5]["source"] = "resultDatasetName='Calibration analysis'"
    nb["cells"][6]["source"] = "resultDatasetNotes='fit looks fine'"
    server.put_notebook("work/analysis.ipynb", nb)

    r = server.http.get("/openbis/save", params={"path": "work/analysis.ipynb"})
    assert r.status_code == 200, r.text
    defaults = r.json()
    assert defaults["owner"] == {"object": OBJECT}
    assert defaults["parents"] == parents
    assert defaults["name"] == "Calibration analysis"
    assert defaults["notes"] == "fit looks fine"
    assert defaults["history_id"] == history_id
    assert defaults["type"] == "ANALYSIS_NOTEBOOK"
    assert defaults["property_codes"] == {"name": "$NAME", "notes": "NOTES", "history_id": "$HISTORY_ID"}
    assert {p["code"]: p["mandatory"] for p in defaults["properties"]} == {
        "$NAME": False, "NOTES": False, "$HISTORY_ID": False,
    }  # fmt: skip

    r = server.http.post("/openbis/save", json={"path": "work/analysis.ipynb"})
    assert r.status_code == 200, r.text
    saved = r.json()
    perm_id = saved["permId"]
    assert saved["link"] == (
        f"{standin.url}/openbis/webapp/eln-lims/?menuUniqueId=null"
        f"&viewName=showViewDataSetPageFromPermId&viewData={perm_id}"
    )
    ds = _dataset(standin, perm_id)
    assert ds["type"] == "ANALYSIS_NOTEBOOK"
    assert ds["sample"] == OBJECT
    assert sorted(ds["parents"]) == parents
    assert ds["properties"] == {
        "$NAME": "Calibration analysis", "NOTES": "fit looks fine", "$HISTORY_ID": history_id,
    }  # fmt: skip
    names = sorted(f.rsplit("/", 1)[-1] for f in ds["files"])
    assert names == [
        "analysis.ipynb",
        "analysis.ipynb.html",
        "openbis-hub-environment.json",
        "requirements.txt",
        "runtime.txt",
    ]
    assert ds["registrator"] == "alice"

    # the hash is that of the notebook as saved (same as the contents API's)
    model = server.http.get("/api/contents/work/analysis.ipynb", params={"content": 0, "hash": 1}).json()
    if model.get("hash"):
        assert saved["hash"] == model["hash"]
    assert server.http.get("/openbis/hash", params={"path": "work/analysis.ipynb"}).json()["hash"] == saved["hash"]

    # saving again: a new version (new permId) of the same history
    r = server.http.post(
        "/openbis/save",
        json={"path": "work/analysis.ipynb", "owner": {"experiment": COLLECTION}, "name": "v2"},
    )
    assert r.status_code == 200, r.text
    second = _dataset(standin, r.json()["permId"])
    assert second["permId"] != perm_id
    assert second["properties"]["$HISTORY_ID"] == history_id
    assert second["properties"]["$NAME"] == "v2"
    assert second["experiment"] == COLLECTION and second["sample"] is None


def test_save_errors(server, standin, parents):
    nb = eln_template("m.ipynb", parents, OBJECT, "hid-m")
    server.put_notebook("m.ipynb", nb)
    count = len(standin.datasets())

    # RAW_DATA has NOTES mandatory in this stand-in; the template's notes are the placeholder
    r = server.http.post("/openbis/save", json={"path": "m.ipynb", "type": "RAW_DATA"})
    assert r.status_code == 400, r.text
    assert r.json()["missing"] == ["NOTES"]
    assert "NOTES" in r.json()["message"]
    r = server.http.get("/openbis/save", params={"path": "m.ipynb"}).json()
    assert r["type"] == "ANALYSIS_NOTEBOOK"

    # no owner anywhere
    server.put_notebook("plain.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    r = server.http.post("/openbis/save", json={"path": "plain.ipynb"})
    assert r.status_code == 400
    assert "owner" in r.json()["message"]

    # unknown owner, unknown notebook, bad body
    r = server.http.post("/openbis/save", json={"path": "m.ipynb", "owner": {"experiment": "/NO/SUCH/THING"}})
    assert r.status_code == 400, r.text
    r = server.http.post("/openbis/save", json={"path": "m.ipynb", "owner": {"object": "NOSUCHOBJECT"}})
    assert r.status_code == 400, r.text
    assert "NOSUCHOBJECT" in r.json()["message"] and "not found" in r.json()["message"]
    assert server.http.post("/openbis/save", json={"path": "nope.ipynb"}).status_code == 404
    r = server.http.post("/openbis/save", content=b"not json")
    assert r.status_code == 400 and "message" in r.json()
    assert len(standin.datasets()) == count


def test_helpers():
    from openbis_hub_singleuser.extension import merge_csp
    from openbis_hub_singleuser.registration import SaveError, classify, scrub
    from openbis_hub_singleuser.tokens import token_path

    assert merge_csp("frame-ancestors 'none'; default-src 'none'", "frame-ancestors 'self' https://a") == (
        "frame-ancestors 'self' https://a; default-src 'none'"
    )
    assert token_path("https://openbis.example.org:8443/openbis", "/x").as_posix() == "/x/openbis.example.org.token"
    tok = "alice-240101120000000x" + "A" * 32
    assert tok not in scrub(f"Session token '{tok}' is invalid") and tok not in scrub("$pat-" + tok)
    assert classify(ValueError("Session no longer available. Please login again.")).status == 401
    assert classify(ValueError("No such experiment: /X/Y/Z")).status == 400
    import requests

    assert classify(requests.ConnectionError("down")).status == 502
    assert isinstance(classify(RuntimeError("boom")), SaveError)

    # property codes differ between openBIS versions: use the ones the type has
    from openbis_hub_singleuser.registration import missing_mandatory, property_codes

    old_eln = [{"code": "NAME", "mandatory": True}, {"code": "NOTES", "mandatory": False},
               {"code": "HISTORY_ID", "mandatory": False}]  # fmt: skip
    assert property_codes(old_eln) == {"name": "NAME", "notes": "NOTES", "history_id": "HISTORY_ID"}
    assert missing_mandatory(old_eln, {"NOTES": "x"}) == ["NAME"]
    assert missing_mandatory(old_eln, {"name": "x"}) == []
    assert property_codes([{"code": "$NAME", "mandatory": False}])["history_id"] is None


def test_openbis_down_is_502_and_default_frame_ancestors(tmp_path, parents):
    """openBIS unreachable: save answers 502; CSP defaults to the openBIS origin.

    Without a hub the server takes its token from ``OPENBIS_TOKEN`` (a server run by hand).
    """
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    dead = f"https://127.0.0.1:{free_port()}"
    token = "alice-240101120000000x" + "B" * 32
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "OPENBIS", "REQUESTS_CA"))},
        "HOME": str(home),
        "OPENBIS_URL": dead,
        "OPENBIS_TOKEN": token,
        "JUPYTERHUB_USER": "alice",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
    }
    s = launch_server(tmp_path, env, home, root, token)
    try:
        assert s.token_file(dead).read_text() == token
        r = s.http.get("/api/status")
        assert r.headers["Content-Security-Policy"].startswith(f"frame-ancestors 'self' {dead}")
        s.put_notebook("d.ipynb", eln_template("d.ipynb", parents, OBJECT, "hid-d"))
        r = s.http.post("/openbis/save", json={"path": "d.ipynb"})
        assert r.status_code == 502, r.text
        assert "unreachable" in r.json()["message"]
        r = s.http.get("/openbis/save", params={"path": "d.ipynb"})
        assert r.status_code == 200 and r.json()["error"]["status"] == 502
        assert r.json()["owner"] == {"object": OBJECT}
    finally:
        s.stop()
    assert token not in s.log.read_text(errors="replace")


CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)


def _need_browser(server):
    if CHROMIUM is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    if not (LABEXTENSION / "package.json").exists():
        pytest.skip("labextension not built (cd singleuser/labextension && jlpm install && jlpm build:prod)")


@pytest.mark.browser
async def test_browser_toolbar_save_dialog(server, standin, parents):
    """The "openBIS" toolbar button: save, fill the dialog, see the new permId."""
    _need_browser(server)
    from playwright.async_api import async_playwright

    nb = eln_template("ui.ipynb", parents[:1], OBJECT, "hid-ui")
    server.put_notebook("browser/ui.ipynb", nb)
    before = {d["permId"] for d in standin.datasets()}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{server.url}/lab/tree/browser/ui.ipynb?token={SERVER_TOKEN}")
            await page.locator(".jp-OpenBISSave-button").first.click(timeout=90_000)
            form = page.locator(".jp-OpenBISSave-form")
            await form.wait_for(timeout=30_000)
            name = form.locator("label", has_text="Name").first.locator("input")
            assert await name.input_value() == "ui"  # placeholder name -> the notebook's name
            await name.fill("from the browser")
            await page.locator(".jp-Dialog-button.jp-mod-accept").click()
            saved = page.locator(".jp-Dialog-content", has_text="Saved to openBIS as dataset")
            await saved.wait_for(timeout=60_000)
            perm_id = (await saved.locator("code").inner_text()).strip()
            link = await saved.locator("a").get_attribute("href")
        finally:
            await browser.close()
    assert perm_id not in before
    assert link.endswith("viewData=" + perm_id)
    ds = _dataset(standin, perm_id)
    assert ds["properties"]["$NAME"] == "from the browser"
    assert ds["sample"] == OBJECT and ds["parents"] == parents[:1]


@pytest.mark.browser
@pytest.mark.parametrize("ui", ["lab/tree", "notebooks"])
async def test_browser_postmessage_bridge(server, parent_page, ui):
    """An allowed parent page asks the framed notebook to save and gets path + hash back.

    JupyterLab (``/lab/tree/...``) and Notebook 7 (``/notebooks/...``, the ELN's URL).
    """
    _need_browser(server)
    from playwright.async_api import async_playwright

    nb = eln_template("framed.ipynb", [], OBJECT, "hid-framed")
    server.put_notebook("browser/framed.ipynb", nb)
    parent_page.html = f"""<!doctype html><html><body>
<iframe id="nb" style="width:1200px;height:800px"
        src="{server.url}/{ui}/browser/framed.ipynb?token={SERVER_TOKEN}"></iframe>
<script>
window.received = [];
window.addEventListener("message", e => {{
  if (e.origin === "{server.url}") window.received.push(e.data);
}});
window.askSave = n => document.getElementById("nb").contentWindow.postMessage(
  {{type: "openbis-hub:save", id: n, path: "browser/framed.ipynb"}}, "{server.url}");
</script></body></html>""".encode()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(parent_page.origin + "/")
            saved = None
            deadline = time.monotonic() + 90
            n = 0
            while saved is None and time.monotonic() < deadline:
                n += 1
                await page.evaluate(f"window.askSave({n})")
                await asyncio.sleep(1)
                received = await page.evaluate("window.received")
                saved = next((m for m in received if m.get("type") == "openbis-hub:saved"), None)
            assert saved is not None, received
        finally:
            await browser.close()
    assert saved["path"] == "browser/framed.ipynb"
    model = server.http.get("/api/contents/browser/framed.ipynb", params={"content": 0, "hash": 1}).json()
    expected = model.get("hash") or server.http.get("/openbis/hash", params={"path": saved["path"]}).json()["hash"]
    assert saved["hash"] == expected


@pytest.mark.browser
async def test_browser_other_origin_cannot_frame(server):
    """A page at an origin not in frame_ancestors gets the server blocked (CSP) and no answer."""
    _need_browser(server)
    from playwright.async_api import async_playwright

    stranger = ParentPage()
    try:
        stranger.html = f"""<!doctype html><html><body>
<iframe id="nb" src="{server.url}/lab/tree/browser/framed.ipynb?token={SERVER_TOKEN}"></iframe>
<script>
window.received = [];
window.addEventListener("message", e => window.received.push(e.data));
</script></body></html>""".encode()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(stranger.origin + "/")
                await asyncio.sleep(3)
                for n in range(3):
                    await page.evaluate(
                        f"document.getElementById('nb').contentWindow.postMessage("
                        f"{{type: 'openbis-hub:save', id: {n}}}, '*')"
                    )
                    await asyncio.sleep(1)
                received = await page.evaluate("window.received")
                frame_url = page.frames[1].url if len(page.frames) > 1 else ""
                framed_has_lab = False
                if len(page.frames) > 1:
                    try:
                        framed_has_lab = await page.frames[1].evaluate("!!document.querySelector('#main')")
                    except Exception:
                        framed_has_lab = False
            finally:
                await browser.close()
    finally:
        stranger.stop()
    assert received == []
    assert not framed_has_lab, frame_url


def test_save_with_expired_token_is_401(server, standin, fake_hub):
    """Expires every session of alice, then gives the server a fresh one (tests run in any order)."""
    server.put_notebook("e.ipynb", eln_template("e.ipynb", [], OBJECT, "hid-e"))
    standin.expire("alice")
    r = server.http.post("/openbis/save", json={"path": "e.ipynb"})
    assert r.status_code == 401
    body = r.json()
    assert "ELN" in body["message"]
    assert server.openbis_token not in r.text
    r = server.http.get("/openbis/save", params={"path": "e.ipynb"})
    assert r.status_code == 200 and r.json()["error"]["status"] == 401
    # the researcher clicks in the ELN again: a new token in auth_state, read by the server
    fresh = login(standin, "alice")
    fake_hub.auth_state = {"openbis_token": fresh, "notebook_token": fresh}
    assert server.http.post("/openbis/token").json()["changed"] is True
    server.openbis_token = fresh


# --------------------------------------------------------------------------- any dataset type, reproducible saves


def _stored_file(standin, token: str, perm_id: str, path: str) -> bytes:
    r = httpx.get(
        f"{standin.url}/datastore_server/{perm_id}/{path}", params={"sessionID": token}, verify=standin.ca_file
    )
    assert r.status_code == 200, r.text
    return r.content


async def test_save_any_type_checked_before_upload_with_the_kernels_environment(server, standin, parents, tmp_path):
    """PROCESSED_DATA: a mandatory vocabulary property, a REAL one; the environment comes from the running kernel.

    The kernel sees a package the server process does not (its own PYTHONPATH), so a requirements.txt
    with it can only have come from the kernel's interpreter.
    """
    from kernel import run_cells

    marker = tmp_path / "kernel-only"
    (marker / "openbis_hub_marker-7.7.7.dist-info").mkdir(parents=True)
    (marker / "openbis_hub_marker-7.7.7.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: openbis-hub-marker\nVersion: 7.7.7\n"
    )
    history_id = str(uuid.uuid4())
    server.put_notebook("typed/run.ipynb", eln_template("run.ipynb", parents, OBJECT, history_id))
    (server.root / "typed" / "fit.csv").write_text("x,y\n1,2\n")
    results = await run_cells(
        server.url,
        SERVER_TOKEN,
        "alice",
        [f"import os, sys; os.environ['PYTHONPATH'] = {str(marker)!r}; sys.path.insert(0, {str(marker)!r})", "1 + 1"],
        path="typed/run.ipynb",
        server_url=server.url,
        shutdown=False,
    )
    assert not any(r["error"] for r in results), results
    count = len(standin.datasets())
    base = {"path": "typed/run.ipynb", "type": "PROCESSED_DATA", "files": ["typed/fit.csv"]}

    r = server.http.post("/openbis/save", json=base)
    assert r.status_code == 400, r.text
    assert r.json()["missing"] == ["INSTRUMENT"] and "INSTRUMENT" in r.json()["message"]
    r = server.http.post("/openbis/save", json={**base, "properties": {"INSTRUMENT": "LASER", "TEMPERATURE": "warm"}})
    assert r.status_code == 400, r.text
    assert set(r.json()["invalid"]) == {"INSTRUMENT", "TEMPERATURE"}
    assert "PT100" in r.json()["invalid"]["INSTRUMENT"]
    for bad in (["../outside.txt"], ["typed/nope.csv"], ["/etc/passwd"], "typed/fit.csv"):
        r = server.http.post("/openbis/save", json={**base, "files": bad, "properties": {"INSTRUMENT": "PT100"}})
        assert r.status_code == 400, (bad, r.text)
    assert len(standin.datasets()) == count, "nothing is registered before the values are right"

    r = server.http.post(
        "/openbis/save",
        json={**base, "properties": {"INSTRUMENT": "pt100", "TEMPERATURE": "21.5"}, "edited_cells": [3]},
    )
    assert r.status_code == 200, r.text
    saved = r.json()
    ds = _dataset(standin, saved["permId"])
    assert ds["type"] == "PROCESSED_DATA" and ds["sample"] == OBJECT and sorted(ds["parents"]) == parents
    assert ds["properties"]["INSTRUMENT"] == "PT100" and ds["properties"]["TEMPERATURE"] == "21.5"
    assert ds["properties"]["$HISTORY_ID"] == history_id
    names = {f.rsplit("/", 1)[-1]: f for f in ds["files"]}
    assert set(names) == {
        "run.ipynb", "run.ipynb.html", "fit.csv", "requirements.txt", "runtime.txt", "openbis-hub-environment.json",
    }  # fmt: skip
    token = server.token_file(standin.url).read_text()
    requirements = _stored_file(standin, token, saved["permId"], names["requirements.txt"]).decode()
    assert "openbis-hub-marker==7.7.7" in requirements and "pybis==" in requirements
    record = json.loads(_stored_file(standin, token, saved["permId"], names["openbis-hub-environment.json"]))
    assert record["kernel"]["source"] == "running kernel"
    assert record["python"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert record["openbis_hub_version"] and record["execution"]["edited_since_run"] == [3]
    assert record["execution"]["never_run"] and record["execution"]["in_order_top_to_bottom"] is False
    runtime = _stored_file(standin, token, saved["permId"], names["runtime.txt"]).decode()
    assert runtime == f"python-{record['python']['python']}\n"
    stored_nb = json.loads(_stored_file(standin, token, saved["permId"], names["run.ipynb"]))
    assert stored_nb["metadata"]["openbis"]["saved_environment"]["requirements_sha256"]
    on_disk = json.loads((server.root / "typed" / "run.ipynb").read_text())
    assert "saved_environment" not in on_disk["metadata"].get("openbis", {}), "the user's file stays as saved"

    # a second save: same history id, a new version; without a running kernel the kernelspec's python answers
    for session in server.http.get("/api/sessions").json():
        server.http.delete(f"/api/sessions/{session['id']}")
    r = server.http.post("/openbis/save", json={"path": "typed/run.ipynb"})
    assert r.status_code == 200, r.text
    second = _dataset(standin, r.json()["permId"])
    assert second["properties"]["$HISTORY_ID"] == history_id and second["permId"] != saved["permId"]
    assert r.json()["environment"]["kernel"]["source"] == "kernelspec"


def test_first_save_of_a_plain_notebook_proposes_a_history_id(server):
    server.put_notebook("plain-h.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    first = server.http.get("/openbis/save", params={"path": "plain-h.ipynb"}).json()
    assert first["history_id_new"] is True and uuid.UUID(first["history_id"])
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [],
          "metadata": {"openbis": {"history_id": first["history_id"],
                                   "datasets": {"20000101000000000-1": {"path": "d", "files": []}}}}}  # fmt: skip
    server.put_notebook("plain-h.ipynb", nb)
    again = server.http.get("/openbis/save", params={"path": "plain-h.ipynb"}).json()
    assert again["history_id"] == first["history_id"] and "history_id_new" not in again
    assert again["parents"] == ["20000101000000000-1"], "downloaded datasets are offered as parents"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_download_into_a_full_folder_is_507(server, standin):
    """A real quota: a 4 MB tmpfs inside the notebook directory, a 3.5 MB dataset (a download leaves 1 MB free)."""
    from openbis_hub_dev.standin.store import DEMO_DATASET1_PERMID

    small = server.root / "small"
    small.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        (small / "filler").write_bytes(b"x" * 1024)
        nb = eln_template("big.ipynb", [], OBJECT, "hid-big")
        server.put_notebook("big.ipynb", nb)
        token = server.token_file(standin.url).read_text()
        (server.root / "blob.bin").write_bytes(os.urandom(3_500_000))
        r = server.http.post("/openbis/save", json={"path": "big.ipynb", "files": ["blob.bin"], "environment": False})
        assert r.status_code == 200, r.text
        perm_id = r.json()["permId"]
        r = server.http.post("/openbis/downloads", json={"datasets": [perm_id], "folder": "small", "wait": True})
        assert r.status_code == 507, r.text
        assert "space" in r.json()["message"] and token not in r.text
        assert sorted(p.name for p in small.iterdir()) == ["filler"], "no partial download is left"
        # (the disk filling up during a download is the unit layer's: a .part file on /dev/full)
        r = server.http.post(
            "/openbis/downloads", json={"datasets": [DEMO_DATASET1_PERMID], "folder": "small", "wait": True}
        )
        assert r.status_code == 200, "a small dataset still fits"
    finally:
        subprocess.run(["umount", str(small)], check=False)
