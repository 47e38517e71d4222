"""``python -m openbis_hub_dev.standin --port 0 --host 127.0.0.1 --state-dir DIR [--http]``

Prints exactly one line when ready:
``openBIS stand-in ready at <url> (CA: <path-to-ca.pem>)`` (CA is ``none`` with --http).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m openbis_hub_dev.standin", description="openBIS stand-in (test double, not openBIS)"
    )
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--state-dir", default=None, help="TLS material and uploaded datasets go here (default: a temp dir)")
    p.add_argument("--http", action="store_true", help="plain http instead of https")
    p.add_argument("--session-timeout", type=float, default=3600, help="idle seconds after which a session expires")
    p.add_argument(
        "--public-url",
        default=None,
        help="base URL to advertise as DataStore downloadUrl (default: scheme://Host-header of each request)",
    )
    p.add_argument(
        "--tls-host", action="append", default=[], help="extra host name/IP for the server certificate (repeatable)"
    )
    p.add_argument(
        "--api-version", default="3.7", help="reported api-version (3.7: fast download v2, 3.6: v1, 3.5: classic)"
    )
    p.add_argument(
        "--mandatory",
        action="append",
        default=[],
        metavar="TYPE:PROP",
        help="make a dataset property mandatory, e.g. ANALYSIS_NOTEBOOK:$NAME",
    )
    p.add_argument(
        "--extra-users",
        type=int,
        default=0,
        metavar="N",
        help="add users user01..userNN (password <user>-pw), e.g. for load tests",
    )
    p.add_argument(
        "--openbis-6",
        action="store_true",
        help="the ELN's property types as openBIS 6 and 7 name them: NAME, HISTORY_ID (default: $NAME, $HISTORY_ID)",
    )
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


async def main_async(args) -> int:
    from .app import StandIn

    mandatory: dict[str, list[str]] = {}
    for item in args.mandatory:
        t, _, prop = item.partition(":")
        mandatory.setdefault(t, []).append(prop)
    s = StandIn(
        host=args.host,
        port=args.port,
        https=not args.http,
        state_dir=args.state_dir,
        session_timeout=args.session_timeout,
        public_url=args.public_url,
        tls_hosts=args.tls_host,
        api_version=args.api_version,
        mandatory=mandatory,
        internal_namespace=not args.openbis_6,
    )
    for i in range(1, args.extra_users + 1):
        s.store.add_user(f"user{i:02d}", f"user{i:02d}-pw")
    await s.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    sys.stdout.write(f"openBIS stand-in ready at {s.url} (CA: {s.ca_file or 'none'})\n")
    sys.stdout.flush()
    await stop.wait()
    await s.stop()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
