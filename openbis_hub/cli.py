"""``openbis-hub``: the command line.

``openbis-hub service`` is the launch service the hub starts. Other
distributions add commands through the ``openbis_hub.commands`` entry point
group: the development distribution (``openbis-hub-dev``) adds ``demo``, which
runs the whole thing on one machine, and ``standin``, the openBIS stand-in.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

COMMAND_GROUP = "openbis_hub.commands"


def commands() -> dict:
    """Every command: this distribution's and those other distributions add."""
    found = {"service": "openbis_hub.service:main"}
    found.update({ep.name: ep for ep in entry_points(group=COMMAND_GROUP)})
    return found


def load(command) -> callable:
    if isinstance(command, str):
        module, _, attr = command.partition(":")
        return getattr(__import__(module, fromlist=[attr]), attr)
    return command.load()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    available = commands()
    parser = argparse.ArgumentParser(
        prog="openbis-hub",
        description=__doc__.split("\n\n")[0],
        epilog="demo and standin come with the development distribution: pip install -e ./dev",
    )
    parser.add_argument("command", choices=sorted(available), help="what to run")
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return
    if argv[0] not in available:
        parser.error(f"unknown command {argv[0]!r} (choose from {', '.join(sorted(available))})")
    result = load(available[argv[0]])(argv[1:])
    if isinstance(result, int) and result:
        sys.exit(result)
