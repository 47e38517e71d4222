"""Downloading a large dataset: the side panel's download vs plain pybis ``ds.download()`` in the same server.

On the real stack (hub, proxy, a local single-user server with the openbis_hub
extension, the openBIS stand-in over https). One dataset of ``--megabytes``
(default 200) random bytes, registered once with pybis; then, alternately:

* panel: ``POST /user/alice/openbis/downloads {"wait": true}`` (what the panel's
  Download button asks, waiting for the end instead of polling);
* baseline: ``o.get_dataset(permId).download(destination=..., wait_until_finished=True)``
  run in a kernel of the same user's server (pybis' fast download, 4 streams).

Each run downloads into a fresh folder; the folders are removed afterwards.

    python benchmarks/bench_panel_download.py [--megabytes 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from pybis import Openbis

from common import FORM, NOTEBOOK, RunningHub, eln, start_standin
from kernel import run_code

COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"


def make_dataset(standin, token: str, workdir: Path, megabytes: int) -> str:
    big = workdir / "big.bin"
    with open(big, "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    o = Openbis(standin.url, verify_certificates=standin.ca_file, token=token)
    ds = o.new_dataset(type="RAW_DATA", experiment=COLLECTION, files=[str(big)], props={"notes": "benchmark"})
    ds.save()
    big.unlink()
    return ds.permId


def main(megabytes: int, repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp())
    standin = start_standin(workdir / "openbis")
    hub = RunningHub(workdir / "hub", standin.url, standin.ca_file).start()
    try:
        token = standin.rpc("login", "alice", "alice-pw")["result"]
        httpx.post(eln(hub, token, "bench", "dl.ipynb", False), content=json.dumps(NOTEBOOK), headers=FORM, timeout=120)
        client = httpx.Client(base_url=hub.url, timeout=1800, headers={"Authorization": f"token {hub.admin_token}"})
        for _ in range(120):  # the server answers once it started
            if client.get("/user/alice/openbis/session").status_code == 200:
                break
            time.sleep(1)
        perm_id = make_dataset(standin, token, workdir, megabytes)
        panel, baseline = [], []
        for i in range(repeat):
            started = time.perf_counter()
            r = client.post(
                "/user/alice/openbis/downloads",
                json={"datasets": [perm_id], "folder": f"bench/panel-{i}", "wait": True},
            )
            r.raise_for_status()
            panel.append(time.perf_counter() - started)
            assert r.json()["bytes_done"] == megabytes << 20, r.json()

            code = (
                "import time\nfrom pybis import Openbis\no = Openbis()\n"
                f"ds = o.get_dataset('{perm_id}')\nt0 = time.perf_counter()\n"
                f"ds.download(destination='bench/pybis-{i}', wait_until_finished=True)\n"
                "print('SECONDS', time.perf_counter() - t0)\n"
            )
            started = time.perf_counter()
            result = asyncio.run(run_code(hub.url, hub.admin_token, "alice", code, timeout=1800))
            elapsed = time.perf_counter() - started
            if result["error"]:
                raise RuntimeError(result["error"])
            inner = float(result["stdout"].split("SECONDS")[-1].split()[0])
            baseline.append(inner)
            print(
                f"run {i + 1}: panel {panel[-1]:.2f} s, pybis download() {inner:.2f} s "
                f"(kernel start and get_dataset included: {elapsed:.2f} s)"
            )
            for name in (f"bench/panel-{i}", f"bench/pybis-{i}"):
                client.delete(f"/user/alice/api/contents/{name}/{perm_id}/original/big.bin")
        a, b = statistics.median(panel), statistics.median(baseline)
        print(
            f"{megabytes} MB dataset: panel {a:.2f} s ({megabytes / a:.0f} MB/s), "
            f"pybis ds.download() {b:.2f} s ({megabytes / b:.0f} MB/s), ratio {a / b:.2f}x (median of {repeat})"
        )
    finally:
        hub.stop()
        standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    main(args.megabytes, args.repeat)
