"""A soak: mixed traffic on the docker compose stack for a while, then what grew.

``--users`` openBIS users; at ``--rate`` actions per minute, each action one of:
a warm click (both ELN POSTs while the user's server runs), a cold click (the
user's server stopped first, as the idle culler or "Stop My Server" would),
the ELN's login link followed to the notebook, a click followed to the notebook
and then "Save to openBIS" of it (the panel's ``POST openbis/save``, with a hub
token of the user's own), a restart of the user's container (``docker
restart``, as after a crash).  Every ``--sample`` seconds
the resident memory (VmRSS) and open file descriptors of the hub and the
launch service are read from the host's ``/proc``.  It stops by itself after
``--minutes``.

Printed: actions and errors (by cause), memory of the hub and the service at
the start and the end and the growth in MB per hour (a least-squares slope over
the samples), open file descriptors first / last / most.

    python benchmarks/bench_soak.py --minutes 30 --rate 30 --users 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
from bench_storm import _cmdline, _tree, container_pid  # noqa: E402

from openbis_hub.deployment.docker import container_name  # noqa: E402

from docker_stack import Stack, compose_command, docker, notebook  # noqa: E402

PREFIX = "openbis-hub-soak"


class SoakStack(Stack):
    prefix = PREFIX


def _status(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample(hub_container: str) -> dict[str, tuple[float, int]]:
    """(VmRSS MB, open fds) of the hub and the launch service."""
    out = {}
    for pid in _tree(container_pid(hub_container)):
        cmd = _cmdline(pid)
        key = "hub" if "jupyterhub -f" in cmd else "service" if "openbis_hub.service" in cmd else None
        if key:
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                fds = 0
            out[key] = (_status(pid, "VmRSS"), fds)
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return float("nan")
    ts, ys = zip(*points, strict=True)
    mt, my = statistics.mean(ts), statistics.mean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return 3600 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else float("nan")


def stop_server(stack: Stack, browser: httpx.Client, user: str) -> None:
    browser.get(f"{stack.url}/hub/home")
    xsrf = browser.cookies.get("_xsrf", path="/hub/")
    browser.delete(f"{stack.url}/hub/api/users/{quote(user)}/server", headers={"X-XSRFToken": xsrf})
    deadline = time.monotonic() + 120
    while docker("inspect", container_name(user, PREFIX), check=False).returncode == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not stop")
        time.sleep(0.5)


def api_token_of(stack: Stack, openbis_token: str, user: str) -> str:
    """A hub API token of ``user``, made in their browser session as JupyterLab's token page would."""
    with stack.client(follow_redirects=True) as browser:
        browser.get(f"{stack.url}/hub/login", params={"token": openbis_token, "next": "/hub/home"})
        r = browser.post(
            f"{stack.url}/hub/api/users/{quote(user, safe='')}/tokens",
            json={"expires_in": 7200, "note": "soak"},
            headers={"X-XSRFToken": browser.cookies.get("_xsrf", path="/hub/")},
        )
    r.raise_for_status()
    return r.json()["token"]


def why(kind: str, what: str, response: httpx.Response) -> str:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text.strip().splitlines()[0] if response.text.strip() else ""
    return f"{kind} {what} {response.status_code}: {message[:100]}"


def act(stack: Stack, kind: str, user: str, token: str, i: int, api_token: str = "") -> str | None:
    """One action; None on success, else the cause."""
    if kind == "restart":
        if docker("restart", container_name(user, PREFIX), check=False, timeout=120).returncode != 0:
            return None  # not running right now: nothing to restart
        return None
    if kind == "cold":
        with stack.client(follow_redirects=True) as browser:
            browser.get(f"{stack.url}/hub/login", params={"token": token, "next": "/hub/home"})
            stop_server(stack, browser, user)
    name = f"soak {i}.ipynb"
    dry = stack.eln_post(token, "soak", name, None)
    if dry.status_code != 200:
        return why(kind, "dry run", dry)
    write = stack.eln_post(token, "soak", dry.json()["fileName"], notebook(f"i = {i}"))
    if write.status_code != 200:
        return why(kind, "write", write)
    if kind in ("cold", "open", "save"):  # a researcher saves from the open notebook
        next_path = f"/user/{user}/notebooks/soak/{dry.json()['fileName']}"
        deadline = time.monotonic() + 180
        with stack.client(follow_redirects=True) as browser:
            page = browser.get(f"{stack.url}/hub/login", params={"token": token, "next": next_path})
            while not (page.status_code == 200 and page.url.path == next_path):
                if time.monotonic() > deadline:
                    return f"{kind} not open ({page.status_code})"
                time.sleep(1)
                page = browser.get(f"{stack.url}{next_path}")
    if kind == "save":
        with stack.client(headers={"Authorization": f"token {api_token}"}) as c:
            saved = c.post(
                f"{stack.url}/user/{quote(user)}/openbis/save",
                json={"path": write.json()["path"], "owner": {"object": "/DEMO/ANALYSIS/STEP1"}, "name": f"soak {i}"},
                timeout=180,
            )
        if saved.status_code != 200:
            return why(kind, "save", saved)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=30, help="actions per minute")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--sample", type=float, default=10, help="seconds between memory samples")
    args = parser.parse_args()

    engine = {"compose": compose_command()}
    stack = SoakStack(engine, Path(tempfile.mkdtemp(prefix="bench-soak-")))
    stack.down()
    rng = random.Random(12)
    counts, errors = Counter(), Counter()
    samples: dict[str, list[tuple[float, float, int]]] = {"hub": [], "service": []}
    try:
        stack.up()
        users = [f"soak{i}" for i in range(args.users)]
        for user in users:
            stack.standin.add_user(user, f"{user}-pw")
        tokens = {u: stack.token(u, f"{u}-pw") for u in users}
        for user in users:  # every server once, so the soak starts warm
            act(stack, "open", user, tokens[user], 0)
        api_tokens = {u: api_token_of(stack, tokens[u], u) for u in users}
        t0 = time.monotonic()
        end = t0 + 60 * args.minutes
        next_sample = t0
        i = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                for key, (rss, fds) in sample(stack.hub_container()).items():
                    samples[key].append((now - t0, rss, fds))
                next_sample = now + args.sample
            i += 1
            kind = rng.choices(["warm", "open", "save", "cold", "restart"], weights=[5, 2, 1, 1, 1])[0]
            user = rng.choice(users)
            started = time.monotonic()
            try:
                cause = act(stack, kind, user, tokens[user], i, api_tokens[user])
            except Exception as e:  # a benchmark counts, it does not stop
                cause = f"{kind} {type(e).__name__}"
            counts[kind] += 1
            if cause:
                errors[cause] += 1
            time.sleep(max(0.0, 60 / args.rate - (time.monotonic() - started)))
        ran = time.monotonic() - t0
        for key, (rss, fds) in sample(stack.hub_container()).items():
            samples[key].append((ran, rss, fds))
    finally:
        stack.cleanup()

    print(
        f"ran {ran / 60:.1f} min, {sum(counts.values())} actions ({', '.join(f'{k} {v}' for k, v in counts.items())})"
    )
    print(
        f"errors: {sum(errors.values())}" + "".join(f"; {n} x {cause}" for cause, n in errors.most_common()),
    )
    for key, points in samples.items():
        if not points:
            continue
        growth = slope_per_hour([(t, rss) for t, rss, _ in points])
        fds = [f for _, _, f in points]
        print(
            f"{key}: {points[0][1]:.0f} MB at the start, {points[-1][1]:.0f} MB at the end,"
            f" growth {growth:+.1f} MB/hour ({len(points)} samples); open fds {fds[0]} first,"
            f" {fds[-1]} last, {max(fds)} most"
        )


if __name__ == "__main__":
    main()
