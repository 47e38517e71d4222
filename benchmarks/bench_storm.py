"""A storm of clicks: N researchers click "New Jupyter notebook" within W seconds, on the docker compose stack.

Each of N distinct openBIS users does the ELN's click at its own moment, spread
evenly over the window: the dry run, the write, then what the browser does
with the ELN's link (``hub/login?token=...&next=/user/<id>/notebooks/...``,
redirects followed with a cookie jar) until the notebook itself answers.  The
hub runs DockerSpawner with the project's images; openBIS is the stand-in on
this host.

Printed, one line each: launches succeeded / failed (by cause), time until
every notebook was open, p50/p95/max per launch (click to notebook open),
the Hub API's p95 latency seen by a probe (``GET /hub/api/user`` with a
user's token, every 0.5 s during the storm), peak memory (resident, VmHWM)
of the hub, the proxy and the launch service and of each user's server,
openBIS calls and Hub API calls per launch, the spawn queue's figures.  The
last line: ``N of N launches succeeded in T s (p95 P s)``.

    python benchmarks/bench_storm.py --users 25 --window 60 [--spawn-limit 10] [--json out.json]

Needs the images from docker/build.sh and a Docker engine (.ci/docker-setup.sh).
Uses its own compose project (``openbis-hub-storm``) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from openbis_hub.deployment.docker import container_name  # noqa: E402

from docker_stack import Stack, compose_command, docker, notebook  # noqa: E402

PREFIX = "openbis-hub-storm"


class StormStack(Stack):
    prefix = PREFIX


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


# --- memory, from the host's /proc (peak resident set, VmHWM) --------------------------


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def container_pid(name: str) -> int:
    return int(docker("inspect", "-f", "{{.State.Pid}}", name, check=False).stdout.strip() or 0)


def hub_peaks(hub_container: str) -> dict[str, float]:
    """Peak RSS (MB) of the hub, the proxy (node) and the launch service, and the culler."""
    peaks = {"hub": 0.0, "proxy": 0.0, "service": 0.0, "culler": 0.0}
    for pid in _tree(container_pid(hub_container)):
        cmd = _cmdline(pid)
        if "jupyterhub -f" in cmd or "jupyterhub  -f" in cmd:
            peaks["hub"] += _hwm_mb(pid)
        elif "node" in cmd.split(" ")[0] or "configurable-http-proxy" in cmd and "openbis_hub.redact" not in cmd:
            peaks["proxy"] += _hwm_mb(pid)
        elif "openbis_hub.service" in cmd:
            peaks["service"] += _hwm_mb(pid)
        elif "jupyterhub_idle_culler" in cmd:
            peaks["culler"] += _hwm_mb(pid)
    return peaks


def server_peak(user: str) -> float:
    """Peak RSS (MB) of a user's server: every process in their container (kernels: none started)."""
    pid = container_pid(container_name(user, PREFIX))
    return sum(_hwm_mb(p) for p in _tree(pid)) if pid else 0.0


# --- the storm ------------------------------------------------------------------------


class Probe(threading.Thread):
    """The Hub API's latency during the storm: ``GET /hub/api/user`` with a user's token, every 0.5 s."""

    def __init__(self, stack: Stack, token: str):
        super().__init__(daemon=True)
        self.stack, self.token = stack, token
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        with httpx.Client(verify=self.stack.hub_ca, timeout=30, headers={"Authorization": f"token {self.token}"}) as c:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = c.get(f"{self.stack.url}/hub/api/user").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.errors += 1
                self.stop.wait(0.5)


def api_token(stack: Stack, openbis_token: str, user: str) -> str:
    with stack.client(follow_redirects=True) as browser:
        browser.get(f"{stack.url}/hub/login", params={"token": openbis_token, "next": "/hub/home"})
        xsrf = browser.cookies.get("_xsrf", path="/hub/")
        r = browser.post(
            f"{stack.url}/hub/api/users/{quote(user, safe='')}/tokens",
            json={"expires_in": 7200, "note": "storm probe"},
            headers={"X-XSRFToken": xsrf},
        )
    r.raise_for_status()
    return r.json()["token"]


def launch(stack: Stack, user: str, token: str, at: float, timeout: float) -> dict:
    """One researcher's click at ``at`` (perf_counter), until their notebook opens."""
    time.sleep(max(0.0, at - time.perf_counter()))
    started = time.perf_counter()
    result = {"user": user, "started": started}
    try:
        dry = stack.eln_post(token, "storm", "storm.ipynb", None)
        if dry.status_code != 200:
            return {**result, "failed": f"dry run {dry.status_code}: {dry.json().get('message', '')[:80]}"}
        name = dry.json()["fileName"]
        write = stack.eln_post(token, "storm", name, notebook(f"user = {user!r}"))
        if write.status_code != 200:
            return {**result, "failed": f"write {write.status_code}: {write.json().get('message', '')[:80]}"}
        result["posts_s"] = time.perf_counter() - started
        next_path = f"/user/{user}/notebooks/storm/{name}"
        with stack.client(follow_redirects=True) as browser:
            page = browser.get(f"{stack.url}/hub/login", params={"token": token, "next": next_path})
            while True:
                if page.status_code == 200 and page.url.path == next_path:
                    break
                if time.perf_counter() - started > timeout:
                    return {**result, "failed": f"not open within {timeout:g} s (last: {page.status_code})"}
                # the browser's pages (spawn pending, not running yet) reload; here: every second
                time.sleep(1)
                page = browser.get(f"{stack.url}{next_path}")
        result["open_s"] = time.perf_counter() - started
        result["ended"] = time.perf_counter()
        return result
    except (httpx.HTTPError, ValueError) as e:
        return {**result, "failed": f"{type(e).__name__}"}


def count_hub_api_calls(logs: str) -> int:
    """Requests to the Hub API the hub logged (every request is logged at INFO or DEBUG)."""
    return len(re.findall(r"\] \d{3} (?:GET|POST|DELETE|PATCH|PUT) /hub/api/", logs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--window", type=float, default=60, help="seconds over which the clicks are spread")
    parser.add_argument("--spawn-limit", type=int, default=None, help="OPENBIS_HUB_CONCURRENT_SPAWN_LIMIT")
    parser.add_argument("--mem-limit", default="1G", help="OPENBIS_HUB_MEM_LIMIT")
    parser.add_argument("--cpu-limit", default="1.0", help="OPENBIS_HUB_CPU_LIMIT")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a launch may take until it counts failed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    engine = {"compose": compose_command()}
    if not engine["compose"]:
        sys.exit("neither `docker compose` nor `docker-compose` is installed")
    StormStack.extra_env = {"OPENBIS_HUB_MEM_LIMIT": args.mem_limit, "OPENBIS_HUB_CPU_LIMIT": args.cpu_limit}
    if args.spawn_limit is not None:
        StormStack.extra_env["OPENBIS_HUB_CONCURRENT_SPAWN_LIMIT"] = str(args.spawn_limit)
    stack = StormStack(engine, Path(tempfile.mkdtemp(prefix="bench-storm-")))
    stack.down()
    users = [f"storm{i:03d}" for i in range(args.users)]
    try:
        stack.up()
        for user in users:
            stack.standin.add_user(user, f"{user}-pw")
        tokens = {user: stack.token(user, f"{user}-pw") for user in users}
        stack.standin.add_user("probe", "probe-pw")
        probe_token = stack.token("probe", "probe-pw")
        probe = Probe(stack, api_token(stack, probe_token, "probe"))
        openbis_before = stack.standin.stats()["total"]
        hub_api_before = count_hub_api_calls(stack.compose("logs", "--no-color", "hub", check=False).stdout)
        probe.start()
        t0 = time.perf_counter() + 1
        with ThreadPoolExecutor(len(users)) as pool:
            futures = [
                pool.submit(launch, stack, user, tokens[user], t0 + i * args.window / len(users), args.timeout)
                for i, user in enumerate(users)
            ]
            results = [f.result() for f in futures]
        probe.stop.set()
        probe.join()
        openbis_calls = stack.standin.stats()["total"] - openbis_before
        logs = stack.compose("logs", "--no-color", "hub", check=False).stdout
        # the probe's own requests are not the launches'
        hub_api_calls = count_hub_api_calls(logs) - hub_api_before - len(probe.latencies) - probe.errors
        peaks = hub_peaks(stack.hub_container())
        servers = {u: server_peak(u) for u in users}
    finally:
        stack.cleanup()

    ok = [r for r in results if "failed" not in r]
    failed = Counter(r["failed"] for r in results if "failed" in r)
    opens = [r["open_s"] for r in ok]
    posts = [r["posts_s"] for r in results if "posts_s" in r]
    total = (max(r["ended"] for r in ok) - t0) if ok else float("nan")
    server_values = [v for v in servers.values() if v]
    queued = re.findall(r"Started the server of \S+ after ([\d.]+) s in the queue", logs)
    throttled = logs.count("pending spawns, throttling")
    n = len(users)
    lines = [
        f"users {n}, window {args.window:g} s, spawn limit {args.spawn_limit or 'default'}, "
        f"per-user limits {args.mem_limit} / {args.cpu_limit} CPU",
        f"launches succeeded: {len(ok)}; failed: {sum(failed.values())}"
        + "".join(f"; {count} x {cause}" for cause, count in failed.most_common()),
        f"time until every notebook was open: {total:.1f} s after the first click",
        f"per launch, click to notebook open: p50 {percentile(opens, 50):.1f} s, p95 {percentile(opens, 95):.1f} s,"
        f" max {max(opens, default=float('nan')):.1f} s",
        f"both ELN POSTs answered: p50 {percentile(posts, 50):.2f} s, p95 {percentile(posts, 95):.2f} s,"
        f" max {max(posts, default=float('nan')):.2f} s",
        f"Hub API probe (GET /hub/api/user every 0.5 s): p50 {1000 * percentile(probe.latencies, 50):.0f} ms,"
        f" p95 {1000 * percentile(probe.latencies, 95):.0f} ms, max {1000 * max(probe.latencies, default=0):.0f} ms,"
        f" {probe.errors} errors",
        f"peak memory (VmHWM): hub {peaks['hub']:.0f} MB, proxy {peaks['proxy']:.0f} MB,"
        f" launch service {peaks['service']:.0f} MB, idle culler {peaks['culler']:.0f} MB",
        f"peak memory per user's server: p50 {percentile(server_values, 50):.0f} MB,"
        f" max {max(server_values, default=0):.0f} MB, sum {sum(server_values):.0f} MB ({len(server_values)} servers)",
        f"openBIS calls per launch: {openbis_calls / n:.2f}; Hub API calls per launch: {hub_api_calls / n:.1f}"
        " (counted in the hub's log, without the probe's; the culler's and the servers' own included)",
        f"spawn queue: hub refused {throttled} starts (429); {len(queued)} starts waited in the queue"
        + (
            f", p50 {statistics.median(map(float, queued)):.1f} s, max {max(map(float, queued)):.1f} s"
            if queued
            else ""
        ),
        f"{len(ok)} of {n} launches succeeded in {total:.1f} s (p95 {percentile(opens, 95):.1f} s)",
    ]
    print("\n".join(lines), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "results": results,
                    "peaks_mb": peaks,
                    "servers_mb": servers,
                    "probe_ms": [round(1000 * x, 1) for x in probe.latencies],
                    "openbis_calls": openbis_calls,
                    "hub_api_calls": hub_api_calls,
                    "lines": lines,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
