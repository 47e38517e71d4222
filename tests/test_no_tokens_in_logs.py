"""No token reaches any log: not raw, not URL-encoded, whatever path it took.

The test makes the requests that used to leak (the ELN's ``?token=``, the
legacy ``?session=`` login field, a refused token, the proxy's error page
while the service restarts) and then scans every log this test session has
written so far; ``conftest.pytest_sessionfinish`` scans them once more at the
very end, so logs written by later tests are covered too.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil

from eln_client import eln_create, eln_url
from logscan import leaks, logs_under


def _service_process(hub) -> psutil.Process:
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        if "openbis_hub.service" in " ".join(child.cmdline()):
            return child
    raise AssertionError("the launch service is not running under the hub")


def _wait_for_service(hub, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{hub.url}/services/openbis/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the launch service did not come back")


async def test_no_token_in_any_log(hub, openbis_standin, token_for, tmp_path_factory):
    token = token_for("alice")
    await eln_create(hub, token, "logs", "scan.ipynb")
    # the legacy login field and a refused token
    httpx.get(f"{hub.url}/hub/login", params={"session": token_for("alice")}, timeout=30)
    httpx.get(f"{hub.url}/hub/login", params={"token": "alice-260101120000000x" + "C" * 32}, timeout=30)
    # the ELN's click while the service restarts: the proxy answers 503 and the hub's error page
    # gets the whole URL, ?token= included, URL-encoded
    during_restart = token_for("alice")
    os.kill(_service_process(hub).pid, signal.SIGKILL)
    answer = httpx.post(eln_url(hub, during_restart, "logs", "restart.ipynb", True), content=b"TEST", timeout=30)
    _wait_for_service(hub)
    # the service's URLs get JSON from the hub's error page (openbis_hub/proxy_errors.py), the token not in it
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/json"), answer.text
    assert "Try again" in answer.json()["message"] and during_restart not in answer.text

    logs = logs_under(tmp_path_factory.getbasetemp())
    assert any(p.name == "hub.log" for p in logs), logs
    issued = set(openbis_standin.issued())
    assert {token, during_restart} <= issued
    assert not leaks(issued, logs)


async def test_no_token_in_any_log_after_the_panels_calls(hub, openbis_standin, token_for, tmp_path_factory):
    """The side panel's calls carry the user's token to openBIS (a download's ``?sessionID=``): never into a log."""
    token = token_for("alice")
    await eln_create(hub, token, "logs", "panel.ipynb")
    with hub.api() as api:
        base = f"{hub.url}/user/alice/openbis"
        assert httpx.get(f"{base}/tree", headers=api.headers, timeout=60).status_code == 200
        body = {"datasets": ["20261123093000000-4"], "folder": "logs/downloaded", "wait": True}
        r = httpx.post(f"{base}/downloads", headers=api.headers, json=body, timeout=120)
        assert r.status_code == 200, r.text
        # a dataset that does not exist and a search: the error paths log too
        r = httpx.post(f"{base}/downloads", headers=api.headers, json={"datasets": ["1-1"]}, timeout=60)
        assert r.status_code == 404
        assert httpx.get(f"{base}/search", headers=api.headers, params={"q": "x"}, timeout=60).status_code == 200
    logs = logs_under(tmp_path_factory.getbasetemp())
    issued = set(openbis_standin.issued())
    assert token in issued
    assert not leaks(issued, logs)
