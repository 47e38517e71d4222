"""The side panel's endpoints of the notebook server, fast: a real jupyter_server app in this process,
openBIS behind an httpx.MockTransport that answers with the stand-in's own V3 methods (its ``Api``
and ``Store``, in this process), so the answers have real openBIS shapes.

Each endpoint's errors: no or an expired token, openBIS down, missing permission, a dataset that
vanished, a full disk, paths outside the notebook directory, invalid bodies; never a 500.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest

from openbis_hub.openbis import AS_V3_PATH, DSS_V3_PATH, OpenBISClient
from openbis_hub_dev.standin.api import Api, MethodNotFound
from openbis_hub_dev.standin.dto import jackson
from openbis_hub_dev.standin.store import (
    AUTHORIZATION_FAILURE,
    DEMO_COLLECTION_PERMID,
    DEMO_CSV,
    DEMO_DATASET1_PERMID,
    DEMO_DATASET2_PERMID,
    DEMO_OBJECT_PERMID,
    DEMO_PROJECT_PERMID,
    DataSet,
    StandInFault,
    Store,
)

from inprocess import listen_on_loopback

OPENBIS = "https://openbis.test"
SERVER_TOKEN = "panel-unit-" + "0" * 32


class FakeOpenBIS:
    """openBIS as an httpx transport: the stand-in's V3 methods, plus switches for failures."""

    def __init__(self):
        self.store = Store()
        self.api = Api(self.store)
        self.down = False
        self.denied: set[str] = set()  # methods answered with AuthorizationFailureException
        self.methods: list[str] = []
        self.transport = httpx.MockTransport(self.handle)

    def login(self, user="alice") -> str:
        return self.store.login(user, f"{user}-pw")

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path in (AS_V3_PATH, DSS_V3_PATH):
            body = json.loads(request.content)
            method, params = body["method"], body["params"]
            self.methods.append(method)
            try:
                if method in self.denied:
                    raise StandInFault("Authorization failure: no role for this.", AUTHORIZATION_FAILURE)
                call = self.api.call_as if path == AS_V3_PATH else self.api.call_dss
                answer = {"result": jackson(call(method, params, OPENBIS))}
            except MethodNotFound:
                return httpx.Response(404, json={"error": {"code": -32601, "message": "method not found"}})
            except StandInFault as e:
                answer = {"error": {"code": 0, "message": e.message, "data": {"exceptionTypeName": e.type_name}}}
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body.get("id"), **answer})
        match = re.fullmatch(r"/datastore_server/(\d+-\d+)/(.+)", path)
        if match and request.method == "GET":  # the classic download servlet
            self.methods.append("download")
            try:
                self.store.get_session(request.url.params.get("sessionID"))
            except StandInFault as e:
                return httpx.Response(401, text=e.message)
            ds = self.store.datasets.get(match.group(1))
            if ds is None or match.group(2) not in ds.files:
                return httpx.Response(404, text="not found")
            return httpx.Response(200, content=ds.files[match.group(2)])
        return httpx.Response(404)


@pytest.fixture
async def panel(tmp_path, monkeypatch):
    """``(fake openBIS, httpx client of the notebook server, root dir, the server's OpenBISServerExtension)``."""
    from jupyter_server.serverapp import ServerApp

    for name in [n for n in os.environ if n.startswith(("JUPYTERHUB_", "OPENBIS"))]:
        monkeypatch.delenv(name)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    root = tmp_path / "root"
    root.mkdir()
    fake = FakeOpenBIS()
    token = fake.login()
    from traitlets.config import Config

    config = Config()
    config.ServerApp.root_dir = str(root)
    config.IdentityProvider.token = SERVER_TOKEN
    # this extension alone: JupyterLab and Notebook are not needed for the API
    config.ServerApp.jpserver_extensions = {
        "openbis_hub_singleuser": True,
        **{
            name: False
            for name in ("jupyterlab", "notebook", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")
        },
    }
    config.OpenBISServerExtension.openbis_url = OPENBIS
    config.OpenBISServerExtension.token_dir = str(tmp_path / "pybis")
    config.OpenBISServerExtension.set_csp = False
    config.OpenBISServerExtension.iframe_cookies = False  # no process-wide cookie hook in the unit layer
    app = ServerApp(config=config)
    app.init_signal = lambda: None
    app.initialize(argv=[], new_httpserver=False)
    ext = app.web_app.settings["openbis_hub"]
    ext._client = OpenBISClient(OPENBIS, transport=fake.transport, timeout=5)
    ext.write_token(token)
    from tornado.httpserver import HTTPServer

    server = HTTPServer(app.web_app)
    port = listen_on_loopback(server)
    headers = {"Authorization": f"token {SERVER_TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=20) as client:
        yield fake, client, root, ext
    server.stop()
    await ext._client.aclose()
    ServerApp.clear_instance()


def assert_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("message"), str) and "Traceback" not in response.text
    for word in words:
        assert word.lower() in body["message"].lower(), body["message"]
    return body


# --------------------------------------------------------------------------- browse and search


async def test_tree_from_space_down_to_dataset_files(panel):
    fake, client, _, _ = panel
    spaces = (await client.get("/openbis/tree")).json()
    assert [(n["kind"], n["code"]) for n in spaces["children"]] == [("space", "DEMO")]
    projects = (await client.get("/openbis/tree", params={"kind": "space", "id": "DEMO"})).json()
    assert [(n["permId"], n["identifier"]) for n in projects["children"]] == [(DEMO_PROJECT_PERMID, "/DEMO/ANALYSIS")]
    collections = (await client.get("/openbis/tree", params={"kind": "project", "id": DEMO_PROJECT_PERMID})).json()
    [collection] = collections["children"]
    assert (collection["kind"], collection["type"], collection["name"]) == ("collection", "COLLECTION", "Measurements")
    inside = (await client.get("/openbis/tree", params={"kind": "collection", "id": DEMO_COLLECTION_PERMID})).json()
    # the object, and the collection's own dataset; the object's dataset shows under the object
    assert [(n["kind"], n["permId"]) for n in inside["children"]] == [
        ("object", DEMO_OBJECT_PERMID),
        ("dataset", DEMO_DATASET1_PERMID),
    ]
    assert inside["children"][1]["properties"]["$NAME"] == "Temperature measurements"
    under_object = (await client.get("/openbis/tree", params={"kind": "object", "id": DEMO_OBJECT_PERMID})).json()
    assert [n["permId"] for n in under_object["children"]] == [DEMO_DATASET2_PERMID]
    files = (await client.get("/openbis/files", params={"permId": DEMO_DATASET1_PERMID})).json()
    assert [f for f in files["files"] if not f["directory"]] == [
        {"path": "original/measurements.csv", "directory": False, "size": len(DEMO_CSV)}
    ]
    # the criteria shapes the V3 API takes: search per level, a page at a time
    assert {"searchSpaces", "searchProjects", "searchExperiments", "searchSamples", "searchDataSets"} <= set(
        fake.methods
    )


async def test_tree_pages(panel):
    fake, client, _, _ = panel
    store = fake.store
    for n in range(7):
        space = store.spaces["DEMO"].__class__(f"S{n}", "", "admin", 0)
        store.spaces[space.code] = space
    first = (await client.get("/openbis/tree", params={"count": 5})).json()
    rest = (await client.get("/openbis/tree", params={"start": 5, "count": 5})).json()
    assert first["total"] == rest["total"] == 8
    assert len(first["children"]) == 5 and len(rest["children"]) == 3
    assert not {n["code"] for n in first["children"]} & {n["code"] for n in rest["children"]}


async def test_search_by_code_name_and_perm_id(panel):
    _, client, _, _ = panel
    by_name = (await client.get("/openbis/search", params={"q": "temperature"})).json()
    assert [h["permId"] for h in by_name["hits"]] == [DEMO_DATASET1_PERMID]
    by_code = (await client.get("/openbis/search", params={"q": "step"})).json()
    assert DEMO_OBJECT_PERMID in [h["permId"] for h in by_code["hits"]]
    by_perm_id = (await client.get("/openbis/search", params={"q": DEMO_DATASET2_PERMID})).json()
    assert [h["permId"] for h in by_perm_id["hits"]] == [DEMO_DATASET2_PERMID]
    owners = (await client.get("/openbis/search", params={"q": "MEAS", "kinds": "collection,object"})).json()
    assert [h["identifier"] for h in owners["hits"]] == ["/DEMO/ANALYSIS/MEASUREMENTS"]
    assert_error(await client.get("/openbis/search", params={"q": ""}), 400, "characters")
    assert_error(await client.get("/openbis/search", params={"q": "x", "kinds": "person"}), 400, "kind")


async def test_entity_with_parents_and_children(panel):
    fake, client, _, _ = panel
    parent = fake.store.datasets[DEMO_DATASET1_PERMID]
    child = fake.store.datasets[DEMO_DATASET2_PERMID]
    parent.children.append(child)
    child.parents.append(parent)
    answer = (await client.get("/openbis/entity", params={"kind": "dataset", "id": DEMO_DATASET2_PERMID})).json()
    assert answer["type"] == "RAW_DATA" and answer["owner"] == {"object": "/DEMO/ANALYSIS/STEP1"}
    assert [p["permId"] for p in answer["parents"]] == [DEMO_DATASET1_PERMID]
    obj = (await client.get("/openbis/entity", params={"kind": "object", "id": "/DEMO/ANALYSIS/STEP1"})).json()
    assert obj["permId"] == DEMO_OBJECT_PERMID and obj["properties"]["NOTES"] == "Calibration run"
    assert_error(await client.get("/openbis/entity", params={"kind": "dataset", "id": "1-1"}), 404, "1-1")
    assert_error(await client.get("/openbis/entity", params={"kind": "dataset", "id": "../x"}), 400)


async def test_dataset_types_with_vocabularies(panel):
    _, client, _, _ = panel
    answer = (await client.get("/openbis/types")).json()
    assert answer["default"] == "ANALYSIS_NOTEBOOK"
    processed = next(t for t in answer["types"] if t["code"] == "PROCESSED_DATA")
    by_code = {p["code"]: p for p in processed["properties"]}
    assert by_code["INSTRUMENT"]["mandatory"] is True
    assert by_code["INSTRUMENT"]["data_type"] == "CONTROLLEDVOCABULARY"
    assert [t["code"] for t in by_code["INSTRUMENT"]["terms"]] == ["PT100", "THERMOCOUPLE"]
    assert by_code["TEMPERATURE"]["data_type"] == "REAL" and by_code["TEMPERATURE"]["terms"] is None


# --------------------------------------------------------------------------- errors of every endpoint

READS = [
    ("/openbis/tree", {}),
    ("/openbis/search", {"q": "x"}),
    ("/openbis/entity", {"kind": "dataset", "id": DEMO_DATASET1_PERMID}),
    ("/openbis/files", {"permId": DEMO_DATASET1_PERMID}),
    ("/openbis/types", {}),
]
WRITES = [
    ("/openbis/downloads", {"datasets": [DEMO_DATASET1_PERMID], "folder": "data", "wait": True}),
    ("/openbis/open", {"permId": DEMO_DATASET1_PERMID}),
]


async def _each(client, path, params):
    if path in dict(WRITES):
        return await client.post(path, json=params)
    return await client.get(path, params=params)


@pytest.mark.parametrize("path,params", READS + WRITES)
async def test_expired_token_is_401_without_the_token(panel, path, params):
    fake, client, _, ext = panel
    token = ext.current_token()
    fake.store.expire_user("alice")
    body = assert_error(await _each(client, path, params), 401, "session has expired")
    assert token not in json.dumps(body)


@pytest.mark.parametrize("path,params", READS + WRITES)
async def test_no_token_is_401(panel, path, params):
    _, client, _, ext = panel
    os.unlink(Path(ext.token_dir) / "openbis.test.token")
    assert_error(await _each(client, path, params), 401, "reopen")


@pytest.mark.parametrize("path,params", READS + WRITES)
async def test_openbis_down_is_502(panel, path, params):
    fake, client, _, _ = panel
    fake.down = True
    assert_error(await _each(client, path, params), 502, "unreachable")


@pytest.mark.parametrize(
    "path,params,method",
    [
        ("/openbis/tree", {"kind": "space", "id": "DEMO"}, "searchProjects"),
        ("/openbis/search", {"q": "x"}, "searchExperiments"),
        ("/openbis/entity", {"kind": "dataset", "id": DEMO_DATASET1_PERMID}, "getDataSets"),
        ("/openbis/files", {"permId": DEMO_DATASET1_PERMID}, "searchFiles"),
        ("/openbis/types", {}, "searchDataSetTypes"),
        ("/openbis/downloads", {"datasets": [DEMO_DATASET1_PERMID], "folder": "d", "wait": True}, "searchFiles"),
        ("/openbis/open", {"permId": DEMO_DATASET1_PERMID}, "getDataSets"),
    ],
)
async def test_missing_permission_is_403(panel, path, params, method):
    fake, client, root, _ = panel
    fake.denied.add(method)
    assert_error(await _each(client, path, params), 403, "permission")
    assert not (root / "d").exists()


async def test_requires_authentication(panel):
    _, client, _, _ = panel
    for path, params in READS:
        r = await client.get(path, params=params, headers={"Authorization": ""})
        assert r.status_code == 403, (path, r.status_code)
    r = await client.post("/openbis/downloads", json=WRITES[0][1], headers={"Authorization": ""})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body,words",
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        ({"folder": "x"}, "datasets"),
        ({"datasets": [], "folder": "x"}, "datasets"),
        ({"datasets": [{"permId": "a/../b"}]}, "permId"),
        ({"datasets": [{"permId": DEMO_DATASET1_PERMID, "files": "original/x"}]}, "files"),
        ({"datasets": [{"permId": DEMO_DATASET1_PERMID, "files": ["../../etc/passwd"]}]}, "unsafe"),
        ({"datasets": [DEMO_DATASET1_PERMID], "folder": "../outside"}, ".."),
        ({"datasets": [DEMO_DATASET1_PERMID], "folder": "/tmp"}, "absolute"),
        ({"datasets": [DEMO_DATASET1_PERMID], "folder": "a/../../b"}, ".."),
        ({"datasets": [DEMO_DATASET1_PERMID], "folder": ".pybis"}, "hidden"),
        ({"datasets": [DEMO_DATASET1_PERMID], "folder": 7}, "folder"),
        ({"datasets": [DEMO_DATASET1_PERMID], "wait": "yes"}, "wait"),
    ],
)
async def test_download_refuses_bad_bodies(panel, body, words):
    fake, client, root, _ = panel
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    assert_error(await client.post("/openbis/downloads", **kwargs), 400, words)
    assert "download" not in fake.methods


async def test_download_refuses_a_symlink_out_of_the_root(panel, tmp_path):
    _, client, root, _ = panel
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    body = {"datasets": [DEMO_DATASET1_PERMID], "folder": "link/data", "wait": True}
    assert_error(await client.post("/openbis/downloads", json=body), 400, "outside")
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- downloads


async def test_download_all_files_and_chosen_ones(panel):
    fake, client, root, _ = panel
    fake.store.datasets[DEMO_DATASET1_PERMID].files["original/big.bin"] = os.urandom(3 << 20)
    r = await client.post("/openbis/downloads", json={"datasets": [DEMO_DATASET1_PERMID], "folder": "in/put"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["bytes_total"] == len(DEMO_CSV) + (3 << 20)
    for _ in range(200):
        status = (await client.get(f"/openbis/downloads/{job['id']}")).json()
        if status["state"] != "running":
            break
        await __import__("asyncio").sleep(0.02)
    assert status["state"] == "done", status
    assert status["bytes_done"] == status["bytes_total"] and status["files_done"] == 2
    assert status["datasets"] == [
        {
            "permId": DEMO_DATASET1_PERMID,
            "path": f"in/put/{DEMO_DATASET1_PERMID}",
            "files": ["original/big.bin", "original/measurements.csv"],
        }
    ]
    target = root / "in" / "put" / DEMO_DATASET1_PERMID / "original"
    assert (target / "measurements.csv").read_bytes() == DEMO_CSV
    assert (target / "big.bin").read_bytes() == fake.store.datasets[DEMO_DATASET1_PERMID].files["original/big.bin"]
    assert not list(target.glob("*.part"))

    chosen = {"datasets": [{"permId": DEMO_DATASET2_PERMID, "files": ["original/notes.txt"]}], "wait": True}
    r = await client.post("/openbis/downloads", json=chosen)
    assert r.status_code == 200, r.text
    assert (root / DEMO_DATASET2_PERMID / "original" / "notes.txt").exists()
    unknown = {"datasets": [{"permId": DEMO_DATASET2_PERMID, "files": ["original/nope.txt"]}], "wait": True}
    assert_error(await client.post("/openbis/downloads", json=unknown), 404, "nope.txt")
    assert_error(await client.get(f"/openbis/downloads/{'0' * 32}"), 404, "no such download")


async def test_vanished_dataset_is_404_and_nothing_is_written(panel):
    fake, client, root, _ = panel
    del fake.store.datasets[DEMO_DATASET2_PERMID]
    body = {"datasets": [DEMO_DATASET1_PERMID, DEMO_DATASET2_PERMID], "folder": "gone", "wait": True}
    assert_error(await client.post("/openbis/downloads", json=body), 404, DEMO_DATASET2_PERMID, "deleted")
    assert not (root / "gone").exists()
    assert "download" not in fake.methods


async def test_dataset_vanishing_during_the_download(panel):
    fake, client, root, _ = panel
    ds = fake.store.datasets[DEMO_DATASET1_PERMID]
    ds.files["original/z-last.csv"] = b"1,2\n"
    original_handle = fake.handle

    def vanish_after_first_file(request):
        answer = original_handle(request)
        if request.url.path.startswith("/datastore_server/2"):
            fake.store.datasets.pop(DEMO_DATASET1_PERMID, None)
        return answer

    fake.transport = httpx.MockTransport(vanish_after_first_file)
    panel[3]._client._http._transport = fake.transport
    body = {"datasets": [DEMO_DATASET1_PERMID], "folder": "half", "wait": True}
    error = assert_error(await client.post("/openbis/downloads", json=body), 404, "z-last.csv")
    assert error["download"]["state"] == "error"
    assert not list((root / "half").rglob("*.part"))


async def test_full_disk_before_the_download_is_507(panel, monkeypatch):
    import shutil

    fake, client, root, _ = panel
    usage = shutil.disk_usage(root)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    body = {"datasets": [DEMO_DATASET1_PERMID], "folder": "full", "wait": True}
    assert_error(await client.post("/openbis/downloads", json=body), 507, "not enough space")
    assert "download" not in fake.methods


async def test_disk_full_during_the_download_is_507_and_leaves_no_partial_file(panel, monkeypatch):
    import uuid

    from openbis_hub_singleuser import downloads

    fake, client, root, _ = panel
    monkeypatch.setattr(downloads.uuid, "uuid4", lambda: uuid.UUID(int=1))  # the job's id, so its .part name
    target = root / "full" / DEMO_DATASET1_PERMID / "original"
    target.mkdir(parents=True)
    (target / "measurements.csv.00000000.part").symlink_to("/dev/full")  # every write: ENOSPC
    body = {"datasets": [DEMO_DATASET1_PERMID], "folder": "full", "wait": True}
    error = assert_error(await client.post("/openbis/downloads", json=body), 507, "full")
    assert error["download"]["state"] == "error"
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- open a stored notebook


def _store_notebook(fake: FakeOpenBIS, nb: dict, name="analysis.ipynb") -> str:
    store = fake.store
    parent = store.datasets[DEMO_DATASET1_PERMID]
    ds = DataSet(
        store.new_perm_id(),
        store.types[("DATA_SET", "ANALYSIS_NOTEBOOK")],
        parent.experiment,
        None,
        {},
        "alice",
        0,
        {f"original/{name}": json.dumps(nb).encode()},
        uploaded=True,
    )
    store.datasets[ds.perm_id] = ds
    return ds.perm_id


def _template(history_id: str) -> dict:
    def code(source, cell_id):
        return {"cell_type": "code", "execution_count": None, "metadata": {"code_cell_id": cell_id},
                "outputs": [], "source": source}  # fmt: skip

    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"autogenerated_by_openbis": True},
        "cells": [
            code("fileName='analysis.ipynb'", "fileName"),
            code('resultDatasetParents=["X-1"]', "resultDatasetParents"),
            code(f"resultDatasetHistoryId='{history_id}'\n# keep me", "resultDatasetHistoryId"),
        ],
    }


async def test_open_a_stored_notebook_as_the_eln_does(panel):
    fake, client, root, _ = panel
    perm_id = _store_notebook(fake, _template("hid-old"))
    r = await client.post("/openbis/open", json={"permId": perm_id, "folder": "opened"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "opened/analysis.ipynb"
    nb = json.loads((root / "opened" / "analysis.ipynb").read_text())
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]]
    assert sources[1] == f'resultDatasetParents=["{perm_id}"]'
    new_id = r.json()["history_id"]
    assert new_id != "hid-old" and sources[2] == f"resultDatasetHistoryId='{new_id}'\n# keep me"
    assert nb["metadata"]["openbis"]["opened_from"] == {
        "permId": perm_id,
        "path": "original/analysis.ipynb",
        "kept_history": False,
    }

    again = await client.post("/openbis/open", json={"permId": perm_id, "folder": "opened", "keep_history": True})
    assert again.json()["path"] == "opened/analysis 2.ipynb"  # nothing is replaced
    kept = json.loads((root / "opened" / "analysis 2.ipynb").read_text())
    assert "".join(kept["cells"][2]["source"]).startswith("resultDatasetHistoryId='hid-old'")
    assert "".join(kept["cells"][0]["source"]) == "fileName='analysis 2.ipynb'"


async def test_open_errors(panel):
    fake, client, root, _ = panel
    # a dataset without a notebook, one that vanished, bad bodies, a folder outside the root
    assert_error(await client.post("/openbis/open", json={"permId": DEMO_DATASET1_PERMID}), 404, "no notebook")
    assert_error(await client.post("/openbis/open", json={"permId": "20000101000000000-99"}), 404, "deleted")
    perm_id = _store_notebook(fake, _template("h"))
    assert_error(await client.post("/openbis/open", json={"permId": perm_id, "folder": "../x"}), 400, "..")
    assert_error(await client.post("/openbis/open", json={"permId": perm_id, "keep_history": "no"}), 400)
    assert_error(await client.post("/openbis/open", json={"permId": perm_id, "file": "/etc/passwd"}), 400)
    assert_error(await client.post("/openbis/open", json={"permId": perm_id, "name": "a/b"}), 400, "place")
    broken = _store_notebook(fake, {"not": "a notebook"})
    assert_error(await client.post("/openbis/open", json={"permId": broken}), 400, "not a valid notebook")
    assert list(root.rglob("*.ipynb")) == []


# --------------------------------------------------------------------------- session state


async def test_session_state(panel):
    fake, client, _, ext = panel
    state = (await client.get("/openbis/session")).json()
    assert state["valid"] is True and state["openbis_user"] == "alice"
    assert state["personal_access_token"] is False and state["renewed_at"] > 0
    fake.store.expire_user("alice")
    state = (await client.get("/openbis/session")).json()
    assert state["valid"] is False and "expired" in state["message"]
    assert ext.current_token() not in json.dumps(state)
    fake.down = True
    assert_error(await client.get("/openbis/session"), 502, "unreachable")


# --------------------------------------------------------------------------- the pieces, without a server


def test_execution_state_says_how_the_outputs_came_about():
    from openbis_hub_singleuser.environment import execution_state

    def code(count, source="x = 1", error=False):
        outputs = [{"output_type": "error", "ename": "E", "evalue": "", "traceback": []}] if error else []
        return {"cell_type": "code", "execution_count": count, "source": source, "outputs": outputs, "metadata": {}}

    in_order = {"cells": [code(1), {"cell_type": "markdown", "source": "# t"}, code(2)]}
    assert execution_state(in_order)["in_order_top_to_bottom"] is True
    messy = {"cells": [code(3), code(1), code(None), code(None, source="  "), code(4, error=True)]}
    state = execution_state(messy, edited=[0, 99, "x"])
    assert state["never_run"] == [2], "an empty cell never run does not count"
    assert state["out_of_order"] == [1] and state["errors"] == [4]
    assert state["edited_since_run"] == [0], "indices outside the notebook are dropped"
    assert state["executed"] == 3 and state["code_cells"] == 5
    assert state["in_order_top_to_bottom"] is False
    assert execution_state({"cells": [code(1)]}, edited=[0])["in_order_top_to_bottom"] is False


def test_kernel_output_is_read_from_the_marked_line_only():
    from openbis_hub_singleuser.environment import MARKER, parse_kernel_output

    line = MARKER + json.dumps({"python": "3.11.2", "requirements": "a==1\n"})
    assert parse_kernel_output(f"noise\n{line}\nmore")["python"] == "3.11.2"
    assert parse_kernel_output("a==1\n") is None
    assert parse_kernel_output(MARKER + "{not json") is None
    assert parse_kernel_output(MARKER + json.dumps({"python": "3"})) is None, "requirements are required"


def test_values_checked_by_data_type():
    from openbis_hub_singleuser.explorer import invalid_values

    props = [
        {"code": "N", "data_type": "INTEGER"},
        {"code": "R", "data_type": "REAL"},
        {"code": "B", "data_type": "BOOLEAN"},
        {"code": "D", "data_type": "DATE"},
        {"code": "T", "data_type": "TIMESTAMP"},
        {"code": "V", "data_type": "CONTROLLEDVOCABULARY", "terms": [{"code": "PT100"}]},
        {"code": "S", "data_type": "VARCHAR"},
    ]
    good = {"N": "-3", "R": "1e-3", "B": "True", "D": "2026-12-01", "T": "2026-12-01 10:00", "V": "pt100", "S": "x"}
    assert invalid_values(props, good) == {}
    bad = {"n": "3.5", "R": "warm", "B": "yes", "D": "1.12.2026", "T": "noon", "V": "LASER", "S": ""}
    assert set(invalid_values(props, bad)) == {"N", "R", "B", "D", "T", "V"}, "codes match whatever their case"
