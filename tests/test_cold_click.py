"""The ELN's click on a stopped server: both answers come at once, the notebook is there when the server is.

The ELN calls ``window.open`` only after both POSTs have answered, and the
browser allows that popup only within a few seconds of the click; a server
start takes longer.  So the service answers without waiting, the hub keeps
the notebook, and the server places it as it starts, before it serves.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from eln_client import eln_create, notebook, stop_server, stored, wait_until_ready


def server_model(hub, user):
    with hub.api() as api:
        return api.get(f"/users/{user}").json()["servers"].get("")


def file_name_cell(nb: dict) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"code_cell_id": "fileName"},
        "outputs": [],
        "source": [f"fileName='{nb}'"],
    }


async def test_cold_click_answers_before_the_server_is_up_and_lands_in_the_notebook(hub, token_for):
    token = token_for("alice")
    stop_server(hub, "alice")
    dry, write = await eln_create(hub, token, "cold", "first.ipynb", notebook("print('cold')"), wait=False)
    assert write.status_code == 200, write.text
    server = server_model(hub, "alice")
    assert server and not server["ready"] and server["pending"] == "spawn", "answered while the server starts"

    path = f"/user/alice/notebooks/cold/{write.json()['fileName']}"
    async with httpx.AsyncClient(base_url=hub.url, follow_redirects=True, timeout=60) as browser:
        page = await browser.get(f"/hub/login?token={token}&next={quote(path, safe='')}")
        assert page.status_code == 200
        if "/hub/spawn-pending/" in page.url.path:  # the hub's progress page, branded
            assert "Preparing your notebook" in page.text
        wait_until_ready(hub, "alice")
        opened = await browser.get(path)
    assert opened.status_code == 200 and opened.url.path == path
    model = stored(hub, "alice", f"cold/{write.json()['fileName']}")
    assert model["content"]["cells"][0]["source"] == "print('cold')"


async def test_cold_click_never_replaces_an_older_file_and_the_elns_url_opens_the_new_one(hub, token_for):
    token = token_for("alice")
    wait_until_ready(hub, "alice") if server_model(hub, "alice") else None
    await eln_create(hub, token, "clash", "n.ipynb", notebook("'old'"))
    assert stored(hub, "alice", "clash/n.ipynb")["content"]["cells"][0]["source"] == "'old'"
    stop_server(hub, "alice")

    new = notebook("'new'")
    new["cells"].insert(0, file_name_cell("n.ipynb"))
    dry, write = await eln_create(hub, token, "clash", "n.ipynb", new)
    assert dry.json()["fileName"] == write.json()["fileName"] == "n.ipynb", "the dry run could not see the folder"
    assert stored(hub, "alice", "clash/n.ipynb")["content"]["cells"][0]["source"] == "'old'", "nothing replaced"
    placed = stored(hub, "alice", "clash/n 2.ipynb")["content"]
    assert placed["cells"][1]["source"] == "'new'"
    assert placed["cells"][0]["source"] == "fileName='n 2.ipynb'", "its save cells name the file it is"

    async with httpx.AsyncClient(base_url=hub.url, timeout=60, follow_redirects=True) as browser:
        anonymous = await browser.get("/user/alice/notebooks/clash/n.ipynb", follow_redirects=False)
        assert "n%202" not in anonymous.headers.get("location", ""), "no file name before logging in"
        await browser.get(f"/hub/login?token={token}&next=/hub/home")
        answer = await browser.get("/user/alice/notebooks/clash/n.ipynb")
    assert answer.status_code == 200 and answer.url.path == "/user/alice/notebooks/clash/n 2.ipynb"
    assert any(r.headers.get("location", "").endswith("/notebooks/clash/n%202.ipynb") for r in answer.history)


async def test_two_cold_clicks_with_one_name_keep_both_notebooks(hub, token_for):
    import asyncio

    token = token_for("bob")
    stop_server(hub, "bob")
    clicks = await asyncio.gather(*(eln_create(hub, token, "both", "same.ipynb", notebook(f"'{i}'")) for i in range(2)))
    names = sorted(write.json()["fileName"] for _, write in clicks)
    assert names == ["same 2.ipynb", "same.ipynb"]
    sources = sorted(stored(hub, "bob", f"both/{n}")["content"]["cells"][0]["source"] for n in names)
    assert sources == ["'0'", "'1'"]


async def test_the_elns_tab_arriving_before_the_notebook_was_delivered_finds_it(hub, token_for):
    """The notebook waits at the hub, the running server was not told yet (a hub restarted mid-start, a race):
    the ELN's URL itself makes the server take it, so the tab opens the notebook just posted."""
    token = token_for("alice")
    await eln_create(hub, token, "late", "warm.ipynb", notebook("'warm'"))  # the server runs
    assert stored(hub, "alice", "late/arrived.ipynb") is None
    with hub.api() as api:  # as the launch service hands a notebook over, without telling the server
        queued = api.post(
            "/openbis/pending/alice",
            json={"folder": "late", "fileName": "arrived.ipynb", "content": notebook("'arrived'")},
        )
    assert queued.status_code == 202, queued.text

    path = "/user/alice/notebooks/late/arrived.ipynb"
    async with httpx.AsyncClient(base_url=hub.url, follow_redirects=True, timeout=60) as browser:
        await browser.get(f"/hub/login?token={token}&next=/hub/home")
        opened = await browser.get(path)
        assert opened.status_code == 200 and opened.url.path == path
        assert stored(hub, "alice", "late/arrived.ipynb")["content"]["cells"][0]["source"] == "'arrived'"
        # a notebook nobody posted: looked for once, then Jupyter's own answer (no redirect loop)
        missing = await browser.get("/user/alice/notebooks/late/never.ipynb")
        assert len(missing.history) <= 1 and missing.url.path == "/user/alice/notebooks/late/never.ipynb"
