"""The ELN's click on a stopped server, and what a click costs openBIS, measured in one run on the real stack.

(a) cold click: time until both of the ELN's POSTs have answered (the browser
    opens its popup only within ~5 s of the click), and until the notebook is
    open (the ELN's URL followed with a cookie jar answers 200 from the
    user's server), against the time the hub alone needs to start the same
    server (POST server + progress until ready), as ratios;
(b) openBIS calls per click with a fresh token (a new ELN session), warm and
    cold, counted by the stand-in.

    python benchmarks/bench_cold_click.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from common import FORM, NOTEBOOK, RunningHub, eln, percentile, start_standin


def login(standin, user="alice"):
    return standin.rpc("login", user, f"{user}-pw")["result"]


async def stop(api, user):
    await api.delete(f"/users/{user}/server")
    while (await api.get(f"/users/{user}")).json()["servers"]:
        await asyncio.sleep(0.1)


async def ready(api, user):
    while True:
        server = (await api.get(f"/users/{user}")).json()["servers"].get("")
        if server and server.get("ready"):
            return
        await asyncio.sleep(0.05)


async def hub_start(api, user) -> float:
    """The baseline: the hub alone starting the server, until ready."""
    started = time.perf_counter()
    await api.post(f"/users/{user}/server")
    await ready(api, user)
    return time.perf_counter() - started


async def cold_click(hub, client, standin, name) -> tuple[float, float]:
    """(both POSTs answered, notebook open), seconds from the click."""
    token = login(standin)
    started = time.perf_counter()
    dry = await client.post(eln(hub, token, "bench", name, True), content=b"TEST", headers=FORM)
    dry.raise_for_status()
    write = await client.post(eln(hub, token, "bench", name, False), content=json.dumps(NOTEBOOK), headers=FORM)
    write.raise_for_status()
    answered = time.perf_counter() - started
    path = f"/user/alice/notebooks/bench/{write.json()['fileName']}"
    async with httpx.AsyncClient(base_url=hub.url, follow_redirects=True, timeout=120) as browser:
        await browser.get(f"/hub/login?token={token}&next={quote(path, safe='')}")
        while True:  # the spawn page polls; the notebook is open once its URL is the server's
            page = await browser.get(path)
            if page.status_code == 200 and page.url.path == path:
                break
            await asyncio.sleep(0.05)
    return answered, time.perf_counter() - started


async def openbis_calls(hub, client, standin, api, cold: bool) -> int:
    if cold:
        await stop(api, "alice")
    token = login(standin)  # a fresh ELN session: nothing knows this token yet
    standin.reset_stats()
    for test in (True, False):
        body = b"TEST" if test else json.dumps(NOTEBOOK).encode()
        (await client.post(eln(hub, token, "calls", "c.ipynb", test), content=body, headers=FORM)).raise_for_status()
    await ready(api, "alice")
    await asyncio.sleep(1)  # let a server that just started read its token, as it would
    return standin.stats()["methods"].get("getSessionInformation", 0) + standin.stats()["methods"].get(
        "isSessionActive", 0
    )


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        standin = start_standin(Path(tmp) / "standin")
        hub = RunningHub(Path(tmp) / "hub", standin.url, standin.ca_file).start()
        try:
            async with (
                httpx.AsyncClient(timeout=180) as client,
                httpx.AsyncClient(
                    base_url=f"{hub.url}/hub/api", headers={"Authorization": f"token {hub.admin_token}"}, timeout=180
                ) as api,
            ):
                await cold_click(hub, client, standin, "warmup.ipynb")  # first start imports everything
                answered, opened, baseline = [], [], []
                for i in range(rounds):
                    await stop(api, "alice")
                    baseline.append(await hub_start(api, "alice"))
                    await stop(api, "alice")
                    a, o = await cold_click(hub, client, standin, f"n{i}.ipynb")
                    answered.append(a)
                    opened.append(o)
                warm = await openbis_calls(hub, client, standin, api, cold=False)
                cold = await openbis_calls(hub, client, standin, api, cold=True)
        finally:
            hub.stop()
            standin.stop()

    def fmt(values):
        return f"p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s"

    print(f"cold ELN click, {rounds} rounds:")
    print(f"  both POSTs answered:      {fmt(answered)}")
    print(f"  notebook open:            {fmt(opened)}")
    print(f"  hub starts the server:    {fmt(baseline)}  (baseline, same run)")
    print(f"  answered / hub start:     {statistics.mean(answered) / statistics.mean(baseline):.2f}x (mean)")
    print(f"  open / hub start:         {statistics.mean(opened) / statistics.mean(baseline):.2f}x (mean)")
    print(f"openBIS token checks per click with a fresh token: warm {warm}, cold {cold}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
