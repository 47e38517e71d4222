"""Real Chromium against the real stack: the ELN's link opens the notebook, its
cells run against the openBIS stand-in, "Save to openBIS" registers a dataset,
and a page on an allowed origin embeds and saves the notebook.

With OPENBIS_HUB_SCREENSHOTS=1, screenshots go to docs/images/ for docs/notebook.md.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from browser import CHROMIUM, COLLECTION, DATASET, chromium, create_notebook, run_cell, screenshot  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium"),
]


async def test_eln_link_cells_and_save_to_openbis(hub, token_for, openbis_standin, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "browser", "analysis")
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{hub.url}/hub/login?token={token}&next=/user/alice/notebooks/browser/{created['fileName']}")
    await page.locator(".jp-CodeCell", has_text="o = Openbis()").first.wait_for(timeout=120_000)
    assert "/user/alice/notebooks/browser/analysis.ipynb" in page.url
    await screenshot(page, "notebook-opened.png")

    await run_cell(page, "o = Openbis()")
    await run_cell(page, f"ds0 = o.get_dataset('{DATASET}')")
    output = page.locator(".jp-CodeCell", has_text=f"ds0 = o.get_dataset('{DATASET}')").first.locator(
        ".jp-OutputArea-output"
    )
    await output.first.wait_for(timeout=120_000)
    text = await output.first.inner_text()
    assert DATASET in text and "Error" not in text, text
    await screenshot(page, "notebook-connected.png")

    before = {d["permId"] for d in openbis_standin.datasets()}
    await page.locator(".jp-OpenBISSave-button").first.click(timeout=60_000)
    form = page.locator(".jp-OpenBISSave-form")
    await form.wait_for(timeout=30_000)
    await form.locator("label", has_text="Name").first.locator("input").fill("Analysis from the browser")
    await screenshot(page, "save-dialog.png")
    await page.locator(".jp-Dialog-button.jp-mod-accept").click()
    saved = page.locator(".jp-Dialog-content", has_text="Saved to openBIS as dataset")
    await saved.wait_for(timeout=120_000)
    await screenshot(page, "saved.png")
    perm_id = (await saved.locator("code").inner_text()).strip()

    assert perm_id not in before
    dataset = next(d for d in openbis_standin.datasets() if d["permId"] == perm_id)
    assert dataset["type"] == "ANALYSIS_NOTEBOOK"
    assert dataset["experiment"] == COLLECTION
    assert dataset["parents"] == [DATASET]
    assert dataset["properties"]["$NAME"] == "Analysis from the browser"
    assert dataset["properties"].get("$HISTORY_ID")
    assert sorted(Path(f).name for f in dataset["files"]) == [
        "analysis.ipynb",
        "analysis.ipynb.html",
        "openbis-hub-environment.json",
        "requirements.txt",
        "runtime.txt",
    ]


async def test_embedded_notebook_saves_on_request(hub, token_for, embedding_pages, chromium):
    token = token_for("alice")
    created = create_notebook(hub, token, "embedded", "framed")
    path = created["path"]
    allowed, _ = embedding_pages
    src = f"{hub.url}/hub/login?token={token}&next=/user/alice/notebooks/{path}"
    allowed.html = f"""<!doctype html><html><body>
<iframe id="nb" style="width:1200px;height:800px" src="{src}"></iframe>
<script>
window.received = [];
window.addEventListener("message", e => {{ if (e.origin === "{hub.url}") window.received.push(e.data); }});
window.askSave = () => document.getElementById("nb").contentWindow.postMessage(
  {{type: "openbis-hub:save"}}, "{hub.url}");
</script></body></html>"""
    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(allowed.url)
    frame = page.frame_locator("#nb")
    first_cell = frame.locator(".jp-CodeCell", has_text="fileName=").first
    await first_cell.wait_for(timeout=120_000)
    await first_cell.locator(".cm-content").click()
    await page.keyboard.press("End")
    await page.keyboard.type("  # edited in the frame")

    saved, deadline = None, time.monotonic() + 90
    while saved is None and time.monotonic() < deadline:
        await page.evaluate("window.askSave()")
        await asyncio.sleep(1)
        saved = next((m for m in await page.evaluate("window.received") if m.get("type") == "openbis-hub:saved"), None)
    assert saved and saved["path"] == path, await page.evaluate("window.received")
    with hub.api() as api:
        model = httpx.get(
            f"{hub.url}/user/alice/api/contents/{path}", headers=api.headers, timeout=30, params={"content": 1}
        ).json()
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in model["content"]["cells"]
    ]
    assert any(s.endswith("# edited in the frame") for s in sources)  # read right after "saved"


async def test_page_on_another_origin_cannot_frame(hub, token_for, embedding_pages, chromium):
    _, stranger = embedding_pages
    token = token_for("alice")
    stranger.html = f"""<!doctype html><html><body>
<iframe id="nb" src="{hub.url}/hub/login?token={token}&next=/hub/home"></iframe></body></html>"""
    page = await chromium.new_page()
    await page.goto(stranger.url)
    await asyncio.sleep(3)
    framed = page.frames[1] if len(page.frames) > 1 else None
    content = await framed.evaluate("document.body ? document.body.innerText : ''") if framed else ""
    assert "JupyterHub" not in content and "Logout" not in content
    csp = httpx.get(f"{hub.url}/hub/login", timeout=30).headers["Content-Security-Policy"]
    assert "frame-ancestors" in csp and stranger.origin not in csp
