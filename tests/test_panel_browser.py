"""The openBIS side panel in real Chromium against the real stack (hub, the user's server, the stand-in):
browse from a space down to a dataset, search, download into the workspace (files in the file
browser, the record in the notebook's metadata), insert code and run it, save as another dataset
type (a mandatory property left empty, then filled), a second save with the same history id, open
a stored notebook from its dataset; and one path in Notebook 7's tree view.

With OPENBIS_HUB_SCREENSHOTS=1, screenshots go to docs/images/ for docs/notebook.md.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from browser import CHROMIUM, COLLECTION, DATASET, chromium, create_notebook, run_cell, screenshot  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium"),
]

CSV = "original/measurements.csv"


def contents(hub, path: str, content: bool = True) -> httpx.Response:
    with hub.api() as api:
        return httpx.get(
            f"{hub.url}/user/alice/api/contents/{path}",
            headers=api.headers,
            params={"content": int(content)},
            timeout=30,
        )


async def open_lab(chromium, hub, token: str, path: str):
    page = await chromium.new_page(viewport={"width": 1400, "height": 950})
    # a workspace of its own: JupyterLab restores no tab of an earlier test over this notebook
    workspace = uuid.uuid4().hex[:12]
    await page.goto(f"{hub.url}/hub/login?token={token}&next=/user/alice/lab/workspaces/{workspace}/tree/{path}")
    await page.locator(".jp-CodeCell", has_text="o = Openbis()").first.wait_for(timeout=120_000)
    return page


async def open_panel(page):
    await page.locator('.jp-SideBar [data-id="openbis-hub-panel"]').click(timeout=60_000)
    panel = page.locator("#openbis-hub-panel")
    await panel.locator(".jp-OpenBISPanel-session", has_text="session valid").wait_for(timeout=60_000)
    return panel


async def expand(panel, kind: str, label: str):
    row = panel.locator(f'.jp-OpenBISPanel-tree .jp-OpenBISPanel-node[data-kind="{kind}"]', has_text=label).first
    await row.locator(".jp-OpenBISPanel-toggle").first.click()
    return row


async def browse_to_dataset(panel):
    await expand(panel, "space", "DEMO")
    await expand(panel, "project", "ANALYSIS")
    await expand(panel, "collection", "MEASUREMENTS")
    dataset = panel.locator(f'.jp-OpenBISPanel-node[data-perm-id="{DATASET}"]').first
    await dataset.wait_for(timeout=30_000)
    return dataset


async def test_browse_search_download_insert_and_run(hub, token_for, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "panel", "explore")
    page = await open_lab(chromium, hub, token, created["path"])
    panel = await open_panel(page)

    dataset = await browse_to_dataset(panel)
    await dataset.locator(".jp-OpenBISPanel-toggle").first.click()  # its files
    await panel.locator(".jp-OpenBISPanel-file", has_text=CSV).wait_for(timeout=30_000)
    await dataset.locator(".jp-OpenBISPanel-label").first.click()
    details = panel.locator(f'.jp-OpenBISPanel-entity[data-perm-id="{DATASET}"]')
    await details.wait_for(timeout=30_000)
    assert "Temperature measurements" in await details.inner_text()
    await screenshot(page, "panel-tree.png")

    search = panel.locator(".jp-OpenBISPanel-search")
    await search.fill("temperature")
    await search.press("Enter")
    hit = panel.locator(f'.jp-OpenBISPanel-results .jp-OpenBISPanel-node[data-perm-id="{DATASET}"]')
    await hit.wait_for(timeout=30_000)
    await screenshot(page, "panel-search.png")

    # download into the notebook's folder: progress, then the files in the file browser
    await details.locator(".jp-OpenBISPanel-download").click()
    form = page.locator(".jp-OpenBISDownload-form")
    await form.wait_for(timeout=30_000)
    assert await form.locator("input").first.input_value() == "panel"
    await screenshot(page, "panel-download.png")
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    await panel.locator(f'.jp-OpenBISPanel-job[data-perm-id="{DATASET}"][data-state="done"]').wait_for(timeout=60_000)
    assert contents(hub, f"panel/{DATASET}/{CSV}", content=False).status_code == 200
    await page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    listing = page.locator(".jp-FileBrowser .jp-DirListing-item", has_text=DATASET).first
    await listing.wait_for(timeout=30_000)
    await listing.dblclick()
    await page.locator(".jp-FileBrowser .jp-DirListing-item", has_text="original").first.wait_for(timeout=30_000)
    await screenshot(page, "panel-downloaded.png")
    await open_panel(page)

    # the notebook's metadata records the download once the notebook is saved
    await page.locator(".jp-NotebookPanel").first.click()
    await page.keyboard.press("Control+s")
    for _ in range(30):
        meta = contents(hub, created["path"]).json()["content"]["metadata"]
        if DATASET in meta.get("openbis", {}).get("datasets", {}):
            break
        await page.wait_for_timeout(500)
    assert meta["openbis"]["datasets"][DATASET] == {"permId": DATASET, "path": f"panel/{DATASET}", "files": [CSV]}

    # insert code below the connection cell and run it
    await run_cell(page, "o = Openbis()")
    await details.locator(".jp-OpenBISPanel-insert").click()
    inserted = page.locator(".jp-CodeCell", has_text=f"ds = o.get_dataset('{DATASET}')").first
    await inserted.wait_for(timeout=30_000)
    await run_cell(page, f"ds = o.get_dataset('{DATASET}')")
    output = await inserted.locator(".jp-OutputArea-output").first.inner_text()
    assert DATASET in output and "Error" not in output, output
    await screenshot(page, "panel-inserted.png")

    # a dataset dropped on the notebook: the same code, for that dataset
    other = "20261123093000000-5"
    dropped = await page.evaluate_handle(
        f"() => {{ const d = new DataTransfer(); d.setData('application/x-openbis-dataset', '{other}'); return d; }}"
    )
    await page.locator(".jp-NotebookPanel").first.dispatch_event("drop", {"dataTransfer": dropped})
    await page.locator(".jp-CodeCell", has_text=f"ds = o.get_dataset('{other}')").first.wait_for(timeout=30_000)


async def test_save_as_another_type_with_mandatory_property_then_again(hub, token_for, openbis_standin, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "typed", "result")
    with hub.api() as api:
        r = httpx.put(
            f"{hub.url}/user/alice/api/contents/typed/fit.csv",
            headers=api.headers,
            json={"type": "file", "format": "text", "content": "x,y\n1,2\n"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
    page = await open_lab(chromium, hub, token, created["path"])
    await run_cell(page, "o = Openbis()")
    history_id = (
        created.get("historyId")
        or json.dumps(contents(hub, created["path"]).json()["content"]["cells"])
        .split("resultDatasetHistoryId='")[1]
        .split("'")[0]
    )

    before = {d["permId"] for d in openbis_standin.datasets()}
    await page.locator(".jp-OpenBISSave-button").first.click(timeout=60_000)
    form = page.locator(".jp-OpenBISSave-form")
    await form.wait_for(timeout=30_000)
    await form.locator("select.jp-OpenBISSave-type").select_option("PROCESSED_DATA")
    instrument = form.locator('select[data-code="INSTRUMENT"]')
    await instrument.wait_for(timeout=10_000)
    await form.locator("label.jp-OpenBISSave-file", has_text="typed/fit.csv").locator("input").check()
    await screenshot(page, "save-any-type.png")
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    error = page.locator(".jp-Dialog-content", has_text="Not saved to openBIS")
    await error.wait_for(timeout=30_000)
    assert "INSTRUMENT is mandatory" in await error.inner_text()
    await screenshot(page, "save-mandatory-missing.png")
    await page.locator(".jp-Dialog-button.jp-mod-reject", has_text="Close").click()
    assert {d["permId"] for d in openbis_standin.datasets()} == before, "nothing registered"

    # the form comes back with what was typed; fill the mandatory vocabulary and a number
    form = page.locator(".jp-OpenBISSave-form")
    await form.locator('select[data-code="INSTRUMENT"]').select_option("PT100")
    await form.locator('input[data-code="TEMPERATURE"]').fill("21.5")
    assert await form.locator("label.jp-OpenBISSave-file", has_text="typed/fit.csv").locator("input").is_checked()
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    saved = page.locator(".jp-Dialog-content", has_text="Saved to openBIS as dataset")
    await saved.wait_for(timeout=120_000)
    await screenshot(page, "saved-with-environment.png")
    perm_id = (await saved.locator("code").inner_text()).strip()
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    ds = next(d for d in openbis_standin.datasets() if d["permId"] == perm_id)
    assert ds["type"] == "PROCESSED_DATA" and ds["experiment"] == COLLECTION
    assert ds["parents"] == [DATASET]
    assert ds["properties"]["INSTRUMENT"] == "PT100" and ds["properties"]["TEMPERATURE"] == "21.5"
    assert ds["properties"]["$HISTORY_ID"] == history_id
    assert {Path(f).name for f in ds["files"]} == {
        "result.ipynb", "result.ipynb.html", "fit.csv", "requirements.txt", "runtime.txt",
        "openbis-hub-environment.json",
    }  # fmt: skip

    # a second save with the same history id: a new version of the same notebook
    await page.locator(".jp-OpenBISSave-button").first.click(timeout=60_000)
    form = page.locator(".jp-OpenBISSave-form")
    await form.wait_for(timeout=30_000)
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    saved = page.locator(".jp-Dialog-content", has_text="Saved to openBIS as dataset")
    await saved.wait_for(timeout=120_000)
    second = (await saved.locator("code").inner_text()).strip()
    assert second != perm_id
    ds2 = next(d for d in openbis_standin.datasets() if d["permId"] == second)
    assert ds2["type"] == "ANALYSIS_NOTEBOOK" and ds2["properties"]["$HISTORY_ID"] == history_id


async def test_open_a_stored_notebook_from_its_dataset(hub, token_for, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "stored", "archived")
    with hub.api() as api:
        r = httpx.post(
            f"{hub.url}/user/alice/openbis/save",
            headers=api.headers,
            json={"path": created["path"], "name": "Archived analysis", "environment": False},
            timeout=120,
        )
    assert r.status_code == 200, r.text
    perm_id = r.json()["permId"]

    page = await open_lab(chromium, hub, token, created["path"])
    panel = await open_panel(page)
    search = panel.locator(".jp-OpenBISPanel-search")
    await search.fill(perm_id)
    await search.press("Enter")
    hit = panel.locator(f'.jp-OpenBISPanel-results .jp-OpenBISPanel-node[data-perm-id="{perm_id}"]')
    await hit.locator(".jp-OpenBISPanel-label").first.click(timeout=30_000)
    details = panel.locator(f'.jp-OpenBISPanel-entity[data-perm-id="{perm_id}"]')
    await details.locator(".jp-OpenBISPanel-open").click(timeout=30_000)
    dialog = page.locator(".jp-Dialog-content", has_text="Open a notebook from openBIS")
    await dialog.wait_for(timeout=30_000)
    await dialog.locator("input").first.fill("reopened")
    await screenshot(page, "open-from-dataset.png")
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    # a second tab of that name opens: the copy in reopened/, its parents cell naming the dataset
    tabs = page.locator(
        ".jp-mod-current .lm-TabBar-tab, .lm-DockPanel-tabBar .lm-TabBar-tab", has_text="archived.ipynb"
    )
    for _ in range(120):
        if await tabs.count() >= 2:
            break
        await page.wait_for_timeout(500)
    assert await tabs.count() >= 2
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell", has_text="resultDatasetParents=").first
    await cell.wait_for(timeout=60_000)
    assert perm_id in await cell.inner_text()
    meta = contents(hub, "reopened/archived.ipynb").json()["content"]["metadata"]["openbis"]
    assert meta["opened_from"]["permId"] == perm_id and meta["parents"] == [perm_id]


async def test_notebook7_tree_view_panel_downloads(hub, token_for, chromium):
    token = token_for("alice")
    create_notebook(hub, token, "nb7", "tree")
    page = await chromium.new_page(viewport={"width": 1400, "height": 950})
    await page.goto(f"{hub.url}/hub/login?token={token}&next=/user/alice/tree/nb7")
    await page.locator(".lm-TabBar-tab", has_text="openBIS").click(timeout=120_000)
    panel = page.locator("#openbis-hub-panel")
    await panel.locator(".jp-OpenBISPanel-session", has_text="session valid").wait_for(timeout=60_000)
    dataset = await browse_to_dataset(panel)
    await dataset.locator(".jp-OpenBISPanel-label").first.click()
    details = panel.locator(f'.jp-OpenBISPanel-entity[data-perm-id="{DATASET}"]')
    await details.locator(".jp-OpenBISPanel-download").click(timeout=30_000)
    form = page.locator(".jp-OpenBISDownload-form")
    await form.wait_for(timeout=30_000)
    assert await form.locator("input").first.input_value() == "nb7"
    await screenshot(page, "notebook7-tree-panel.png")
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    await panel.locator('.jp-OpenBISPanel-job[data-state="done"]').wait_for(timeout=60_000)
    assert contents(hub, f"nb7/{DATASET}/{CSV}", content=False).status_code == 200
    await page.locator(".lm-TabBar-tab", has_text="Files").click()
    await page.locator(".jp-DirListing-item", has_text=DATASET).first.wait_for(timeout=30_000)


async def test_download_several_datasets_at_once(hub, token_for, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "several", "both")
    page = await open_lab(chromium, hub, token, created["path"])
    panel = await open_panel(page)
    other = "20261123093000000-5"  # the object's dataset
    first = await browse_to_dataset(panel)
    await first.locator(".jp-OpenBISPanel-select").first.check()
    await expand(panel, "object", "STEP1")
    second = panel.locator(f'.jp-OpenBISPanel-tree .jp-OpenBISPanel-node[data-perm-id="{other}"]').first
    await second.locator(".jp-OpenBISPanel-select").first.check(timeout=30_000)
    button = panel.locator(".jp-OpenBISPanel-download-selected")
    assert "2 selected datasets" in await button.inner_text()
    await button.click()
    await page.locator(".jp-Dialog-content", has_text=f"All files of {DATASET}, {other}").wait_for(timeout=30_000)
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    await panel.locator('.jp-OpenBISPanel-job[data-state="done"]').wait_for(timeout=60_000)
    assert contents(hub, f"several/{DATASET}/{CSV}", content=False).status_code == 200
    assert contents(hub, f"several/{other}/original/notes.txt", content=False).status_code == 200
    await page.locator(".jp-NotebookPanel").first.click()
    await page.keyboard.press("Control+s")
    for _ in range(30):
        datasets = contents(hub, created["path"]).json()["content"]["metadata"].get("openbis", {}).get("datasets", {})
        if len(datasets) == 2:
            break
        await page.wait_for_timeout(500)
    assert set(datasets) == {DATASET, other}
