"""Any name a researcher types, through the real stack exactly as the ELN and Chromium send it.

The ELN concatenates the typed folder and name into the query unencoded; the
browser percent-encodes only spaces, quotes, controls and non-ASCII, and cuts
at ``#``.  Each row is posted that way (raw bytes, form content type, body
``TEST`` then the notebook), and the ELN's browser URL is followed with a
cookie jar into the notebook.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from eln_client import FORM, browser_query, encode_uri_component, notebook, post_raw, stored


async def eln_click(hub, token, folder, name, source):
    query = browser_query(token, folder, name, True)
    status, dry = await asyncio.to_thread(post_raw, hub, "/services/openbis/" + query, b"TEST")
    if status != 200:
        return status, dry, None
    nb = notebook(source)
    nb["cells"].insert(
        0,
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {"code_cell_id": "fileName"},
            "outputs": [],
            "source": [f"fileName='{dry['fileName']}'"],
        },
    )
    status, write = await asyncio.to_thread(
        post_raw, hub, "/services/openbis/" + browser_query(token, folder, name, False), json.dumps(nb).encode()
    )
    return status, dry, write


ROWS = [
    ("R&D", "a&b"),
    ("100%", "yield 5%"),
    ("rates", "50%ab done"),
    ("C++", "a+b"),
    ("Ünïcödé 😀", "日本語 ノート"),
    ("long", "n" * 238),  # 244 bytes with .ipynb: the longest whose checkpoint copy fits
    ("deep/er", "x=y; z"),
]


@pytest.mark.parametrize("folder, name", ROWS)
async def test_typed_names_are_stored_as_typed_and_the_elns_url_opens_them(hub, token_for, folder, name):
    token = token_for("alice")
    status, dry, write = await eln_click(hub, token, folder, name, f"print({name!r})")
    assert status == 200, (dry, write)
    assert write["fileName"] == dry["fileName"]
    assert write["fileName"].startswith(name), write
    assert write["path"] == f"{folder}/{write['fileName']}"
    model = stored(hub, "alice", write["path"])
    assert model is not None, f"nothing stored at {write['path']!r}"
    assert model["content"]["cells"][1]["source"] == f"print({name!r})"

    # the ELN's window.open(...): hub/login?token=&next=encodeURIComponent(path)
    path = f"/user/alice/notebooks/{folder}/{write['fileName']}"
    async with httpx.AsyncClient(follow_redirects=True, timeout=60) as browser:
        page = await browser.get(f"{hub.url}/hub/login?token={token}&next={encode_uri_component(path)}")
    assert page.status_code == 200, page.text[:300]
    assert page.url.path == path  # httpx decodes the path once, as the browser does


@pytest.mark.parametrize("folder, name", [("run#1", "nb"), ("run", "nb#2")])
async def test_a_name_with_a_hash_gets_a_clear_message_and_nothing_written(hub, token_for, folder, name):
    status, dry, _ = await eln_click(hub, token_for("alice"), folder, name, "1")
    assert status == 400
    assert "'#'" in dry["message"] and "without '#'" in dry["message"]
    assert stored(hub, "alice", folder.split("#")[0]) is None or folder == "run"


async def test_foreign_origin_starts_nothing(hub, token_for, openbis_standin):
    """A page that is not an allowed ELN gets 403 at once: no hub user created, no server started."""
    import secrets

    user = "stranger" + secrets.token_hex(3)
    openbis_standin.add_user(user, "pw")
    token = openbis_standin.rpc("login", user, "pw")["result"]
    r = httpx.post(
        f"{hub.url}/services/openbis/{browser_query(token, 'f', 'n', True)}",
        content=b"TEST",
        headers={**FORM, "Origin": "https://evil.example"},
        timeout=30,
    )
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/json")
    with hub.api() as api:
        assert api.get(f"/users/{user}").status_code == 404


async def test_run_all_runs_through_the_elns_notebook(hub, token_for):
    """The ELN's template, Run All in a kernel: the optional session-refresh cell no longer stops it."""
    from eln_client import DATASET
    from kernel import run_cells

    token = token_for("alice")
    created = httpx.post(
        f"{hub.url}/services/openbis/api/notebooks",
        timeout=120,
        headers={"Authorization": f"Bearer {token}"},
        json={"datasets": [DATASET], "owner": {"object": "/DEMO/STEP1"}, "folder": "runall", "name": "all"},
    )
    assert created.status_code == 201, created.text
    path = created.json()["path"]
    nb = stored(hub, "alice", path)["content"]
    assert nb["metadata"]["openbis_hub"]["rewritten_cells"], "the rewrite is recorded"
    codes = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    ]
    results = await run_cells(hub.url, hub.admin_token, "alice", codes, path=path, timeout=180)
    errors = [r["error"] for r in results if r["error"]]
    assert not errors, errors
    assert len(results) == len(codes), "every cell ran"
