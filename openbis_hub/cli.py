"""``openbis-hub``: the command line.

``openbis-hub demo`` runs the whole thing on one machine; ``openbis-hub
service`` is the launch service the hub starts; ``openbis-hub standin`` is
the openBIS stand-in for trials and tests.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="openbis-hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["demo", "service", "standin"], help="what to run")
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return
    command, rest = argv[0], argv[1:]
    if command == "service":
        from .service import main as service_main

        service_main(rest)
    elif command == "standin":
        from .standin.__main__ import main as standin_main

        standin_main(rest)
    elif command == "demo":
        from .demo import main as demo_main

        demo_main(rest)
    else:
        parser.error(f"unknown command {command!r}")
