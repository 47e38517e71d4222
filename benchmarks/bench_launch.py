"""The launch service against its baselines, measured in one run on the real stack
(JupyterHub + proxy + service + local single-user servers + openBIS stand-in).

(a) warm write (server running): the ELN's write POST through the service vs a
    bare contents-API PUT of the same notebook through the proxy; p50/p95, ratio.
(b) cold launch (server stopped): dry run + write through the service vs doing it
    by hand with the Hub API (POST server, follow progress, PUT contents); ratio.
(c) 20 users launching at the same moment: all succeed? total time.
(d) Hub API and openBIS calls per launch (warm and cold).

    python benchmarks/bench_launch.py [--rounds 30] [--cold-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from common import FORM, NOTEBOOK, RunningHub, eln, percentile, start_standin, summary


async def eln_launch(client, hub, token, folder, name):
    dry = await client.post(eln(hub, token, folder, name, True), content=b"TEST", headers=FORM)
    dry.raise_for_status()
    write = await client.post(eln(hub, token, folder, name, False), content=json.dumps(NOTEBOOK), headers=FORM)
    write.raise_for_status()
    return write.json()


async def by_hand(client, hub, user, path):
    """The baseline for a cold launch: what a script using the Hub API directly does."""
    api = f"{hub.url}/hub/api/users/{quote(user)}"
    headers = {"Authorization": f"token {hub.admin_token}"}
    (await client.post(f"{api}/server", headers=headers)).raise_for_status()
    async with client.stream("GET", f"{api}/server/progress", headers=headers) as progress:
        async for line in progress.aiter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("ready"):
                break
    put = await client.put(
        f"{hub.url}/user/{quote(user)}/api/contents/{quote(path)}",
        headers=headers,
        json={"type": "notebook", "format": "json", "content": NOTEBOOK},
    )
    put.raise_for_status()


async def stop(client, hub, user):
    api = f"{hub.url}/hub/api/users/{quote(user)}"
    headers = {"Authorization": f"token {hub.admin_token}"}
    await client.delete(f"{api}/server", headers=headers)
    while (await client.get(api, headers=headers)).json().get("servers"):
        await asyncio.sleep(0.1)


def service_hub_calls(hub, since: int) -> int:
    """Hub API requests the launch service made, read from the hub's log."""
    text = hub.log_path.read_bytes()[since:].decode(errors="replace")
    return sum(1 for line in text.splitlines() if "/hub/api/" in line and "(openbis@" in line)


async def run(rounds: int, cold_rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp())
    standin = start_standin(workdir / "openbis", extra_args=["--extra-users", "20"])
    hub = RunningHub(
        workdir / "hub", standin.url, standin.ca_file, extra_env={"OPENBIS_HUB_SPAWN_TIMEOUT": "600"}
    ).start()
    try:
        async with httpx.AsyncClient(timeout=900) as client:
            token = standin.rpc("login", "alice", "alice-pw")["result"]
            await eln_launch(client, hub, token, "warmup", "w.ipynb")

            # (d) calls per launch, warm
            standin.reset_stats()
            mark = hub.log_path.stat().st_size
            await eln_launch(client, hub, token, "calls", "c.ipynb")
            await asyncio.sleep(0.5)
            warm_hub, warm_openbis = service_hub_calls(hub, mark), standin.stats()["total"]

            # (a) warm write
            service, bare = [], []
            headers = {"Authorization": f"token {hub.admin_token}"}
            for i in range(rounds):
                started = time.perf_counter()
                answer = await client.post(
                    eln(hub, token, "warm", f"s{i}.ipynb", False), content=json.dumps(NOTEBOOK), headers=FORM
                )
                answer.raise_for_status()
                service.append(time.perf_counter() - started)
                started = time.perf_counter()
                put = await client.put(
                    f"{hub.url}/user/alice/api/contents/warm/b{i}.ipynb",
                    headers=headers,
                    json={"type": "notebook", "format": "json", "content": NOTEBOOK},
                )
                put.raise_for_status()
                bare.append(time.perf_counter() - started)
            print("(a) warm write")
            print(f"    through the service : {summary(service)}")
            print(f"    bare contents PUT   : {summary(bare)}")
            print(
                f"    ratio service/bare  : p50 {percentile(service, 50) / percentile(bare, 50):.2f}x, "
                f"p95 {percentile(service, 95) / percentile(bare, 95):.2f}x"
            )

            # (b) cold launch, alternating to share any drift
            cold_service, cold_hand = [], []
            cold_hub = cold_openbis = 0
            for i in range(cold_rounds):
                await stop(client, hub, "alice")
                standin.reset_stats()
                mark = hub.log_path.stat().st_size
                started = time.perf_counter()
                await eln_launch(client, hub, token, "cold", f"c{i}.ipynb")
                cold_service.append(time.perf_counter() - started)
                await asyncio.sleep(0.5)
                cold_hub, cold_openbis = service_hub_calls(hub, mark), standin.stats()["total"]
                await stop(client, hub, "alice")
                started = time.perf_counter()
                await by_hand(client, hub, "alice", f"cold/h{i}.ipynb")
                cold_hand.append(time.perf_counter() - started)
            print("(b) cold launch (server stopped)")
            print(f"    through the service : {summary(cold_service)}")
            print(f"    by hand, Hub API    : {summary(cold_hand)}")
            print(f"    ratio service/hand  : {sum(cold_service) / sum(cold_hand):.2f}x")

            # (c) 20 users at once
            tokens = [standin.rpc("login", f"user{i:02d}", f"user{i:02d}-pw")["result"] for i in range(1, 21)]
            started = time.perf_counter()
            results = await asyncio.gather(
                *(eln_launch(client, hub, t, "crowd", "n.ipynb") for t in tokens), return_exceptions=True
            )
            total = time.perf_counter() - started
            ok = sum(1 for r in results if isinstance(r, dict))
            print(
                f"(c) 20 users at once   : {ok}/20 succeeded in {total:.1f} s ({total / 20:.2f} s per user on 2 cores)"
            )
            print("(d) calls per launch (dry run + write)")
            print(f"    warm: {warm_hub} Hub API calls, {warm_openbis} openBIS calls")
            print(f"    cold: {cold_hub} Hub API calls, {cold_openbis} openBIS calls")
    finally:
        hub.stop()
        standin.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold-rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.cold_rounds))
