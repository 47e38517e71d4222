"""200 validations of one openBIS token, with and without the client's cache.

Real HTTP against the openBIS stand-in (https). Prints the openBIS calls the
stand-in counted and the wall time, and their ratios, measured in one run.

    python benchmarks/bench_token_cache.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time

from openbis_hub.openbis import OpenBISClient

from common import start_standin

N = 200


async def validate(url: str, ca: str, token: str, use_cache: bool, concurrent: bool) -> float:
    async with OpenBISClient(url, ca_bundle=ca) as client:
        started = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(client.session_information(token, use_cache=use_cache) for _ in range(N)))
        else:
            for _ in range(N):
                await client.session_information(token, use_cache=use_cache)
        return time.perf_counter() - started


def main() -> None:
    standin = start_standin(tempfile.mkdtemp())
    try:
        token = standin.rpc("login", "alice", "alice-pw")["result"]
        for mode in ("sequential", "burst (all at once)"):
            results = {}
            for label, use_cache in (("no cache", False), ("cache", True)):
                standin.reset_stats()
                seconds = asyncio.run(validate(standin.url, standin.ca_file, token, use_cache, mode != "sequential"))
                calls = standin.stats()["methods"].get("getSessionInformation", 0)
                results[label] = (calls, seconds)
                print(f"{mode:20s} {label:9s}: {calls:4d} openBIS calls, {1000 * seconds:8.1f} ms")
            (c0, t0), (c1, t1) = results["no cache"], results["cache"]
            print(f"{mode:20s} ratio    : openBIS calls {c0 / max(c1, 1):.0f}x fewer, time {t0 / t1:.1f}x faster")
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
