"""Cold launch in Docker: the whole stack vs a bare ``docker run`` of the same image.

(a) whole stack: docker compose (hub + proxy + launch service, https), the
    openBIS stand-in on the host, the user's server stopped.  Timed from the
    ELN's first POST (the dry run, which starts the user's container through
    DockerSpawner) until the ELN's second POST has written the notebook,
    i.e. what the user waits for after clicking.
(b) bare: ``docker run`` of the single-user image running ``jupyter server``,
    until ``GET /api/status`` answers.

Both are cold starts of a new container (DockerSpawner removes containers on
stop; the bare one is ``--rm``) from an image already on the engine.  The ratio
is the median of (a) over the median of (b).

    python benchmarks/bench_docker_launch.py [--rounds 5] [--json out.json]

Needs the images from docker/build.sh and a Docker engine (see
.ci/docker-setup.sh).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from docker_stack import (  # noqa: E402
    NOTEBOOK_IMAGE,
    Stack,
    compose_command,
    docker,
    free_port,
    login,
    notebook,
    stop_server,
    user_container,
)


def bare_run() -> float:
    port = free_port()
    started = time.perf_counter()
    cid = docker(
        "run",
        "-d",
        "--rm",
        "-p",
        f"127.0.0.1:{port}:8888",
        NOTEBOOK_IMAGE,
        "jupyter",
        "server",
        "--ip=0.0.0.0",
        "--port=8888",
        "--IdentityProvider.token=bench",
    ).stdout.strip()
    try:
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/status", headers={"Authorization": "token bench"}, timeout=2
                )
                if r.status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 120:
                raise RuntimeError("the bare container did not answer in 120 s")
            time.sleep(0.05)
    finally:
        docker("rm", "-f", cid, check=False)


def stack_launch(stack: Stack, token: str, i: int) -> float:
    with login(stack, token, "/hub/home") as (browser, _):
        if user_container("alice") is not None:
            stop_server(stack, browser, "alice")
    started = time.perf_counter()
    dry = stack.eln_post(token, "bench", f"cold {i}.ipynb", None)
    write = stack.eln_post(token, "bench", f"cold {i}.ipynb", notebook("print(1)"))
    elapsed = time.perf_counter() - started
    assert dry.status_code == 200 and write.status_code == 200, (dry.text, write.text)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    engine = {"compose": compose_command()}
    if not engine["compose"]:
        sys.exit("neither `docker compose` nor `docker-compose` is installed")
    stack = Stack(engine, Path(tempfile.mkdtemp(prefix="bench-docker-")))
    stack.down()
    try:
        t0 = time.perf_counter()
        stack.up()
        hub_start = time.perf_counter() - t0
        token = stack.token("alice", "alice-pw")
        stack_launch(stack, token, 0)  # first spawn creates the user and the volume
        bare_run()  # warm the page cache for the image the same way
        whole = [stack_launch(stack, token, i) for i in range(1, args.rounds + 1)]
        bare = [bare_run() for _ in range(args.rounds)]
    finally:
        stack.cleanup()

    result = {
        "rounds": args.rounds,
        "hub_start_s": round(hub_start, 2),
        "whole_stack_cold_launch_s": {
            "median": round(statistics.median(whole), 2),
            "all": [round(x, 2) for x in whole],
        },
        "bare_docker_run_s": {"median": round(statistics.median(bare), 2), "all": [round(x, 2) for x in bare]},
        "ratio": round(statistics.median(whole) / statistics.median(bare), 2),
        "images_mb": {
            image: round(int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6)
            for image in (stack.env["OPENBIS_HUB_IMAGE"], NOTEBOOK_IMAGE)
        },
        "docker": subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
        ).stdout.strip(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
