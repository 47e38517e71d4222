"""``openbis-hub demo``: the whole story in a browser, and a clean Ctrl-C.

The browser tests drive the ELN-like page in headless Chromium: log in, pick the
demo object, More... -> New Jupyter notebook, Create & connect (checking the
ELN's exact requests), run the template's connect and dataset cells in the
notebook tab, Save to openBIS, and see the new dataset listed on the page.
Screenshots for the tutorial go to ``docs/images/`` when OPENBIS_HUB_SCREENSHOTS=1
(otherwise to a temporary directory, so a test run leaves the work tree alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from hub import free_port, proxy_available
from standin import start_standin

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
if os.environ.get("OPENBIS_HUB_SCREENSHOTS") != "1":
    import tempfile

    IMAGES = Path(tempfile.gettempdir()) / "openbis-hub-screenshots"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
OBJECT_PERMID = "20261123093000000-3"  # /DEMO/ANALYSIS/STEP1
OBJECT_DATASET = "20261123093000000-5"
READY = re.compile(r"^Open the ELN-like page:\s+(\S+)")

pytestmark = pytest.mark.skipif(not proxy_available(), reason="configurable-http-proxy missing (run `npm install`)")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Demo:
    """``openbis-hub demo`` as a subprocess in its own process group (like a terminal)."""

    def __init__(self, *args: str, timeout: float = 120):
        self.port = free_port()
        exe = shutil.which("openbis-hub", path=os.path.dirname(sys.executable)) or "openbis-hub"
        self.proc = subprocess.Popen(
            [exe, "demo", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.eln_url: str | None = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = READY.match(line.strip())
                if m:
                    self.eln_url = m.group(1)
                if line.startswith("Press Ctrl-C"):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not self.eln_url:
            self.interrupt()
            raise RuntimeError("demo did not come up:\n" + self.output)
        self.hub_url = f"http://127.0.0.1:{self.port}"
        self.eln_port = urlsplit(self.eln_url).port

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def tree(self) -> set:
        import psutil

        try:
            return {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C: SIGINT to the whole process group, as a terminal does."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise

    def stop_and_check_clean(self) -> None:
        import psutil

        children = self.tree()
        assert children, "the demo should have started the hub, the proxy and servers"
        code = self.interrupt()
        assert code == 0, self.output
        assert "Stopped." in self.output
        deadline = time.monotonic() + 10
        left = set(children)
        while left and time.monotonic() < deadline:
            left = {p for p in left if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
            time.sleep(0.2)
        assert not left, f"processes left behind: {[psutil.Process(p).cmdline() for p in left]}"
        assert port_free(self.port), f"hub port {self.port} still in use"
        assert port_free(self.eln_port), f"ELN page port {self.eln_port} still in use"


def need_browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")


def shot(page, name: str, screenshots: bool) -> None:
    if screenshots:
        IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGES / name))


def run_code_cells(nb, indexes: list[int]) -> None:
    cells = nb.locator(".jp-Notebook .jp-CodeCell")
    for i in indexes:
        cell = cells.nth(i)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        nb.keyboard.press("Shift+Enter")
        # wait until it ran: the prompt shows [n]
        nb.wait_for_function(
            """([i]) => {
                const c = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i];
                return c && /\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent);
            }""",
            arg=[i],
            timeout=120_000,
        )


def save_to_openbis(nb, name: str, screenshots: bool) -> tuple[str, str]:
    """Click "Save to openBIS" (the labextension), else call the server's save endpoint: (permId, link)."""
    button = nb.locator(".jp-OpenBISSave-button").first
    try:
        button.wait_for(timeout=30_000)
    except Exception:
        button = None
    if button is not None:
        button.click()
        form = nb.locator(".jp-OpenBISSave-form")
        form.wait_for(timeout=60_000)
        form.locator("label", has_text="Name").first.locator("input").fill(name)
        nb.locator(".jp-Dialog-button.jp-mod-accept").click()
        saved = nb.locator(".jp-Dialog-content", has_text="Saved to openBIS as dataset")
        saved.wait_for(timeout=120_000)
        shot(nb, "demo-saved.png", screenshots)
        perm_id = saved.locator("code").first.inner_text().strip()
        link = saved.locator("a", has_text="Open it in the openBIS ELN").get_attribute("href")
        nb.locator(".jp-Dialog-button").last.click()
        return perm_id, link
    # no labextension: the same thing through the server's endpoint
    nb.keyboard.press("Control+s")
    path = unquote(urlsplit(nb.url).path).split("/notebooks/", 1)[1]
    base = nb.url.split("/notebooks/", 1)[0]
    answer = nb.evaluate(
        """async ([base, path, name]) => {
            const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
            const r = await fetch(base + "/openbis/save", {method: "POST",
                headers: {"Content-Type": "application/json", "X-XSRFToken": decodeURIComponent(xsrf)},
                body: JSON.stringify({path: path, name: name})});
            return await r.json();
        }""",
        [base, path, name],
    )
    return answer["permId"], answer["link"]


def dataset_labels_fit(page) -> list[str]:
    """The dialog's dataset labels, each checked to be shown whole (wrapped, never cut off)."""
    return page.eval_on_selector_all(
        "#jn-datasets label",
        """labels => labels.map(l => {
            const dialog = document.getElementById("jupyter-dialog").getBoundingClientRect();
            const r = l.getBoundingClientRect();
            if (l.scrollWidth > l.clientWidth || r.right > dialog.right || r.left < dialog.left) return "CUT: " + l.textContent;
            return l.textContent.trim();
        })""",
    )


def story(demo: Demo, user: str, password: str, screenshots: bool = False, own_eln: bool = True) -> str:
    """The whole ELN story in Chromium; returns the permId of the saved dataset.

    ``own_eln``: the demo's stand-in, whose saved datasets link to the demo's ELN-like page; the
    story then follows that link and makes a copy with "Use Jupyter Notebook as Template"."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
            # Playwright turns Chromium's popup blocker off; the ELN's users have it on, and the
            # ELN's window.open after its two POSTs must still count as the click (cold server too)
            ignore_default_args=["--disable-popup-blocking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 820}, ignore_https_errors=True)
            page = context.new_page()
            logins = []
            context.on("request", lambda r: logins.append(r.url) if "/hub/login" in r.url else None)
            requests = []
            page.on("request", lambda r: requests.append(r) if "/services/openbis/" in r.url else None)
            page.goto(demo.eln_url)
            page.fill("#user", user)
            page.fill("#password", password)
            shot(page, "demo-login.png", screenshots)
            page.click("#login-button")

            # pick the object, see its dataset
            page.click(f'.tree a[data-permid="{OBJECT_PERMID}"]')
            page.locator(f'#datasets tbody tr[data-permid="{OBJECT_DATASET}"]').wait_for(timeout=30_000)
            page.click("#more-button")
            shot(page, "demo-more-menu.png", screenshots)
            page.click("#new-jupyter-notebook")

            # the ELN's dialog, preselected from the entity
            page.locator("#jupyter-dialog[open]").wait_for(timeout=30_000)
            selected = page.eval_on_selector_all("#jn-datasets input:checked", "boxes => boxes.map(b => b.value)")
            assert selected == [OBJECT_DATASET]
            labels = dataset_labels_fit(page)
            assert f"{OBJECT_DATASET} (Step 1 notes) [RAW_DATA]" in labels, labels
            assert not [label for label in labels if label.startswith("CUT: ")], labels
            assert page.input_value("#jn-owner").endswith("/STEP1")
            page.fill("#jn-folder", "demo")
            page.fill("#jn-name", "analysis")
            shot(page, "demo-dialog.png", screenshots)
            with context.expect_page(timeout=240_000) as new_tab:
                page.click("#jn-connect")
            nb = new_tab.value

            # exactly the ELN's requests: dry run, then the notebook, both form-typed
            posts = [r for r in requests if r.method == "POST"]
            assert len(posts) == 2, [r.url for r in posts]
            for r, test in zip(posts, ("True", "False"), strict=True):
                q = parse_qs(urlsplit(r.url).query)
                assert q["test"] == [test] and q["folder"] == ["demo"]
                assert q["token"][0].startswith(user + "-")
                assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
            assert posts[0].post_data == "TEST"
            notebook = json.loads(posts[1].post_data)
            assert notebook["metadata"]["autogenerated_by_openbis"] is True
            file_name = parse_qs(urlsplit(posts[0].url).query)["filename"][0]
            assert file_name == "analysis.ipynb"
            # ... then the new tab opens <jupyterEndpoint>hub/login?token=<session>&next=/user/<id>/notebooks/..
            login = next(u for u in logins if "/hub/login" in u)
            q = parse_qs(urlsplit(login).query)
            assert login.startswith(demo.hub_url + "/hub/login?token=")
            assert q["token"] == parse_qs(urlsplit(posts[0].url).query)["token"]
            assert q["next"] == [f"/user/{user}/notebooks/demo/analysis.ipynb"]

            # the notebook tab: Notebook 7 with the ELN template
            nb.set_viewport_size({"width": 1280, "height": 820})
            nb.wait_for_url(re.compile(rf"/user/{re.escape(user)}/notebooks/demo/analysis\.ipynb"), timeout=120_000)
            nb.locator(".jp-Notebook .jp-CodeCell").nth(14).wait_for(timeout=120_000)
            # code cells: 0-4 variables, 5 connect, 6 session refresh (skipped: it
            # would replace the token), 7 owner, 8 dataset, 9 its files
            run_code_cells(nb, [0, 1, 2, 3, 4, 5, 7, 8, 9])
            cells = nb.locator(".jp-Notebook .jp-CodeCell")
            for i in (5, 7, 8, 9):
                errors = cells.nth(i).locator('[data-mime-type="application/vnd.jupyter.stderr"]')
                text = cells.nth(i).locator(".jp-OutputArea").inner_text()
                assert errors.count() == 0 or "Traceback" not in errors.first.inner_text(), text
                assert "Error" not in text, text
            assert OBJECT_DATASET in cells.nth(8).locator(".jp-OutputArea").inner_text()
            assert "notes.txt" in cells.nth(9).locator(".jp-OutputArea").inner_text()
            nb.evaluate("i => document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i].scrollIntoView()", 5)
            shot(nb, "demo-notebook.png", screenshots)

            perm_id, link = save_to_openbis(nb, "Demo analysis", screenshots)
            assert perm_id

            # back in the ELN: the new dataset is listed without a reload
            page.bring_to_front()
            row = page.locator(f'#datasets tbody tr[data-permid="{perm_id}"]')
            row.wait_for(timeout=30_000)
            assert "ANALYSIS_NOTEBOOK" in row.inner_text()
            assert "Demo analysis" in row.inner_text()
            shot(page, "demo-dataset-listed.png", screenshots)
            if own_eln:
                follow_the_link_and_copy(context, demo, link, perm_id, notebook, screenshots)
            else:
                assert link.endswith(
                    f"/openbis/webapp/eln-lims/?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData={perm_id}"
                )
            return perm_id
        finally:
            browser.close()


def follow_the_link_and_copy(context, demo: Demo, link: str, perm_id: str, original: dict, screenshots: bool) -> None:
    """ "Open it in the openBIS ELN" opens the dataset on the demo's own page (http: no certificate
    warning), logged in as in the first tab; its notebook's Jupyter icon makes a copy ("Use Jupyter
    Notebook as Template", Keep History) under the typed name, which is taken: the page says so."""
    assert link == (f"{demo.eln_url}?menuUniqueId=null&viewName=showViewDataSetPageFromPermId&viewData={perm_id}"), link
    eln = context.new_page()  # the link's target=_blank tab
    requests = []
    eln.on("request", lambda r: requests.append(r))
    eln.goto(link)
    eln.locator("#dataset-title", has_text=f"Dataset: {perm_id}").wait_for(timeout=30_000)
    assert eln.locator('[data-property="$NAME"]').inner_text() == "Demo analysis"
    row = eln.locator('#files tr[data-path$="analysis.ipynb"]')
    row.wait_for(timeout=30_000)
    shot(eln, "demo-dataset-view.png", screenshots)
    row.locator("button.jupyter-template").click()
    eln.locator("#jupyter-template-dialog[open]").wait_for(timeout=30_000)
    eln.check("#jt-keep-history")
    eln.fill("#jt-folder", "demo")
    eln.fill("#jt-name", "analysis")
    with context.expect_page(timeout=240_000) as new_tab:
        eln.click("#jt-accept")
    copy = new_tab.value
    copy.wait_for_url(re.compile(r"/notebooks/demo/analysis%202\.ipynb$"), timeout=120_000)
    notice = eln.locator("#notice")
    notice.wait_for(timeout=30_000)
    assert '"analysis.ipynb" was taken in "demo", so your new notebook is "analysis 2.ipynb".' in notice.inner_text()

    # the ELN's requests: the notebook from the DSS with ?sessionID=, the dry run, the notebook
    path = row.get_attribute("data-path")
    (download,) = [r for r in requests if "/datastore_server/" + perm_id + "/" in r.url]
    assert download.method == "GET" and urlsplit(download.url).path.endswith("/" + path)
    assert parse_qs(urlsplit(download.url).query)["sessionID"][0].startswith("alice-")
    posts = [r for r in requests if r.method == "POST" and "/services/openbis/" in r.url]
    assert [parse_qs(urlsplit(r.url).query)["test"] for r in posts] == [["True"], ["False"]]
    assert posts[0].post_data == "TEST"
    cells = {
        c["metadata"].get("code_cell_id"): "".join(c["source"])
        for c in json.loads(posts[1].post_data)["cells"]
        if c["cell_type"] == "code"
    }
    history = next(
        "".join(c["source"]) for c in original["cells"] if c["metadata"].get("code_cell_id") == "resultDatasetHistoryId"
    )
    assert cells["fileName"] == "fileName='analysis 2.ipynb'"
    assert cells["resultDatasetParents"] == f'resultDatasetParents=["{perm_id}"]'
    assert cells["resultDatasetHistoryId"] == history, "Keep History"
    # and the notebook's first cell says which name it got
    stored_nb = copy.evaluate(
        """async url => {
            const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
            const r = await fetch(url + "?content=1", {headers: {"X-XSRFToken": decodeURIComponent(xsrf)}});
            return r.ok ? await r.json() : {status: r.status, text: await r.text()};
        }""",
        copy.url.split("?", 1)[0].replace("/notebooks/", "/api/contents/", 1),
    )
    assert "content" in stored_nb, stored_nb
    assert "“analysis.ipynb” was taken in “demo”, so this notebook is “analysis 2.ipynb”" in "".join(
        stored_nb["content"]["cells"][0]["source"]
    )


# ---------------------------------------------------------------------------- tests
def state_dir_in(output: str) -> Path:
    m = re.search(r"^State \(hub database, notebooks, openBIS data\) is (?:kept )?in (\S+?):? ", output + " ", re.M)
    assert m, output
    return Path(m.group(1))


def test_demo_starts_serves_the_page_and_stops_cleanly():
    demo = Demo()
    state = None
    try:
        assert "alice / alice-pw" in demo.output
        # a newcomer learns where the notebooks are, and that they go away with the demo
        state = state_dir_in(demo.output)
        assert state.is_dir()
        assert f"Notebooks live in {state / 'hub' / 'users'}/<user>/" in demo.output
        assert "a temporary directory,\nremoved when the demo stops. Keep it with --state-dir DIR." in demo.output
        # the hub's own login page names the demo logins too
        login = httpx.get(f"{demo.hub_url}/hub/login")
        assert login.status_code == 200
        assert 'id="openbis-login-hint"' in login.text and "alice / alice-pw" in login.text
        page = httpx.get(demo.eln_url)
        assert page.status_code == 200 and "Create &amp; connect" in page.text
        profile = httpx.get(demo.eln_url + "profile.js").text
        assert f'"jupyterEndpoint": "{demo.hub_url}/"' in profile
        assert f'"jupyterIntegrationServerEndpoint": "{demo.hub_url}/services/openbis/"' in profile
        # the page's origin may call the launch service (CORS), as the ELN's would
        origin = f"http://127.0.0.1:{demo.eln_port}"
        r = httpx.get(f"{demo.hub_url}/services/openbis/api/health", headers={"Origin": origin})
        assert r.headers.get("access-control-allow-origin") == origin
        # the page's JSON-RPC reaches the stand-in on the same origin
        rpc = httpx.post(
            f"{origin}/openbis/openbis/rmi-application-server-v3.json",
            json={"jsonrpc": "2.0", "id": "1", "method": "login", "params": ["alice", "alice-pw"]},
        )
        assert rpc.json()["result"].startswith("alice-")
        # the stand-in's https door serves the same page and profile (the origin pybis uses)
        m = re.search(r"openBIS stand-in \.+ (https://\S+)", demo.output)
        https_profile = httpx.get(m.group(1) + "/openbis/webapp/eln/profile.js", verify=False).text
        assert https_profile == profile
    finally:
        if demo.proc.poll() is None:
            demo.stop_and_check_clean()
    assert state is not None and not state.exists(), "the temporary state is removed on exit"


def test_demo_keeps_its_state_with_state_dir(tmp_path):
    """--state-dir DIR: the banner says the state is kept there, the notebooks are under DIR, and they stay."""
    state = tmp_path / "kept"
    demo = Demo("--state-dir", str(state))
    try:
        assert f"State (hub database, notebooks, openBIS data) is kept in {state}" in demo.output
        assert "temporary" not in demo.output
        token = httpx.post(
            f"http://127.0.0.1:{demo.eln_port}/openbis/openbis/rmi-application-server-v3.json",
            json={"jsonrpc": "2.0", "id": "1", "method": "login", "params": ["alice", "alice-pw"]},
        ).json()["result"]
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
        query = f"{demo.hub_url}/services/openbis/?token={token}&folder=kept&filename=n.ipynb"
        nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 2}
        assert httpx.post(query + "&test=True", content=b"TEST", headers=form, timeout=120).status_code == 200
        assert httpx.post(query + "&test=False", content=json.dumps(nb), headers=form, timeout=120).status_code == 200
        notebook = state / "hub" / "users" / "alice" / "kept" / "n.ipynb"
        deadline = time.monotonic() + 120
        while not notebook.exists() and time.monotonic() < deadline:  # a cold click: placed as the server starts
            time.sleep(0.2)
        assert notebook.exists(), f"Notebooks live in {state / 'hub' / 'users'}/<user>/"
    finally:
        if demo.proc.poll() is None:
            demo.stop_and_check_clean()
    assert notebook.exists(), "kept after the demo stopped"


def test_demo_argument_errors():
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from openbis_hub.cli import main; main()",
            "demo",
            "--openbis-ca-bundle",
            "/nonexistent.pem",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--openbis-ca-bundle goes with --openbis-url" in r.stderr


def test_demo_refuses_a_busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-c", "from openbis_hub.cli import main; main()", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2 and f"port {port} is in use" in r.stdout


def test_page_template_is_the_service_template(tmp_path):
    """The page's JavaScript template and ``openbis_hub.service.template`` agree cell for cell."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    from openbis_hub.eln_template import eln_notebook

    datasets = [
        {"permId": "20261123093000000-4", "owner": {"experiment": "20261123093000000-2"}},
        {"permId": "20261123093000000-5", "owner": {"object": "20261123093000000-3"}},
    ]
    for owner in ({"object": "/DEMO/ANALYSIS/STEP1"}, {"experiment": "/DEMO/ANALYSIS/MEASUREMENTS"}):
        script = tmp_path / "render.js"
        script.write_text(
            "global.window = {};\n"
            + (REPO / "dev/openbis_hub_dev/standin/eln/template-constants.js").read_text()
            + (REPO / "dev/openbis_hub_dev/standin/eln/jupyter.js").read_text()
            + f"\nprocess.stdout.write(JSON.stringify(window.JupyterUtil.createJupyterNotebookContent("
            f"{json.dumps(datasets)}, {json.dumps(owner)}, \"it's.ipynb\", 'hid-1')));\n"
        )
        out = subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout
        assert json.loads(out) == eln_notebook("it's.ipynb", datasets, owner, history_id="hid-1")


@pytest.mark.browser
def test_demo_whole_story_in_the_browser():
    need_browser()
    demo = Demo()
    try:
        story(demo, "alice", "alice-pw", screenshots=True)
    except Exception:
        print(demo.output)
        raise
    finally:
        if demo.proc.poll() is None:
            demo.stop_and_check_clean()


@pytest.mark.browser
def test_demo_against_an_external_openbis(tmp_path):
    need_browser()
    openbis = start_standin(tmp_path / "openbis")
    try:
        demo = Demo("--openbis-url", openbis.url, "--openbis-ca-bundle", openbis.ca_file)
        try:
            assert "Log in with your account on " + openbis.url in demo.output
            # a real openBIS: no demo logins on the hub's login page
            assert 'id="openbis-login-hint"' not in httpx.get(f"{demo.hub_url}/hub/login").text
            perm_id = story(demo, "Jane.Doe", "jane-pw", own_eln=False)
        finally:
            if demo.proc.poll() is None:
                demo.stop_and_check_clean()
        saved = [d for d in openbis.datasets() if d["permId"] == perm_id]
        assert saved and saved[0]["type"] == "ANALYSIS_NOTEBOOK"
    finally:
        openbis.stop()
