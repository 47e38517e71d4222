"""Helpers of the browser tests: Debian's Chromium through Playwright, the ELN's notebooks, cells run as a user does.

With OPENBIS_HUB_SCREENSHOTS=1, :func:`screenshot` writes to docs/images/ (for docs/notebook.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

DATASET = "20261123093000000-4"
COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


async def screenshot(page, name: str) -> None:
    if os.environ.get("OPENBIS_HUB_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(IMAGES / name))


@pytest.fixture
async def chromium():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def create_notebook(hub, token: str, folder: str, name: str, **fields) -> dict:
    """A notebook made by the launch service as the ELN asks for it (``fields`` go into the request)."""
    answer = httpx.post(
        f"{hub.url}/services/openbis/api/notebooks",
        timeout=120,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "datasets": [DATASET],
            "owner": {"experiment": COLLECTION},
            "folder": folder,
            "name": name,
            **fields,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def run_cell(page, text: str, attempts: int = 3) -> None:
    """Run the code cell holding ``text`` and wait until the kernel has run it (its prompt shows a number).

    A Shift+Enter pressed while JupyterLab is still connecting the kernel can be lost, so it is
    pressed again (running ``o = Openbis()`` twice is harmless) before the test gives up.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    cell = page.locator(".jp-CodeCell", has_text=text).first
    prompt = cell.locator(".jp-InputPrompt")
    for attempt in range(attempts):
        await cell.locator(".cm-content").click()
        await page.keyboard.press("Shift+Enter")
        try:
            await page.wait_for_function(
                "el => /\\[\\d+\\]/.test(el.textContent)", arg=await prompt.element_handle(), timeout=40_000
            )
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
