"""Save to openBIS: the notebook server's one-click save vs the same upload with plain pybis.

On the real stack (hub, proxy, a local single-user server with the openbis_hub
extension, the openBIS stand-in over https). For a 1 MB and a 20 MB notebook:

* one-click: ``POST /user/alice/openbis/save`` (reads the saved notebook,
  exports HTML, registers an ANALYSIS_NOTEBOOK dataset with both files);
* baseline: what the ELN template's last cells do with plain pybis in the
  same machine: nbconvert HTML export, then ``o.new_dataset(...).save()``.

    python benchmarks/bench_save.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
from nbconvert import HTMLExporter
from pybis import Openbis

from common import RunningHub, start_standin

COLLECTION = "/DEMO/ANALYSIS/MEASUREMENTS"
PARENT = "20261123093000000-4"


def big_notebook(megabytes: int) -> dict:
    line = "0123456789" * 10 + "\n"
    text = line * (megabytes * 1024 * 1024 // len(line))
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "source": ["print(data)"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": text}],
            }
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def plain_pybis(standin, token: str, path: Path) -> None:
    node = nbformat.read(path, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(node)
    Path(str(path) + ".html").write_text(html, encoding="utf-8")
    o = Openbis(standin.url, verify_certificates=standin.ca_file, token=token)
    o.new_dataset(
        type="ANALYSIS_NOTEBOOK",
        experiment=o.get_experiment(COLLECTION),
        parents=[PARENT],
        files=[str(path), str(path) + ".html"],
        props={"$name": path.name},
    ).save()


def main(repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp())
    standin = start_standin(workdir / "openbis")
    hub = RunningHub(workdir / "hub", standin.url, standin.ca_file).start()
    try:
        token = standin.rpc("login", "alice", "alice-pw")["result"]
        client = httpx.Client(base_url=hub.url, timeout=600, headers={"Authorization": f"token {hub.admin_token}"})
        form = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
        client.post(
            f"/services/openbis/?token={token}&folder=bench&filename=start.ipynb&test=False",
            content=json.dumps(big_notebook(0)),
            headers=form,
        ).raise_for_status()
        for megabytes in (1, 20):
            nb = big_notebook(megabytes)
            path = f"bench/big{megabytes}.ipynb"
            client.put(
                f"/user/alice/api/contents/{path}", json={"type": "notebook", "format": "json", "content": nb}
            ).raise_for_status()
            local = workdir / f"big{megabytes}.ipynb"
            local.write_text(json.dumps(nb))
            one_click, baseline = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.post(
                    "/user/alice/openbis/save",
                    json={"path": path, "owner": {"experiment": COLLECTION}, "parents": [PARENT], "name": path},
                )
                answer.raise_for_status()
                one_click.append(time.perf_counter() - started)
                started = time.perf_counter()
                plain_pybis(standin, token, local)
                baseline.append(time.perf_counter() - started)
            a, b = statistics.median(one_click), statistics.median(baseline)
            print(
                f"{megabytes:2d} MB notebook: one-click save {a:6.2f} s, plain pybis {b:6.2f} s, "
                f"ratio {a / b:.2f}x (median of {repeat})"
            )
    finally:
        hub.stop()
        standin.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    main(parser.parse_args().repeat)
