"""The ``litserve`` command: run a server script, or print the version."""

from __future__ import annotations

import argparse
import runpy
import sys
from typing import List, Optional

from litserve import __version__


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="litserve", description="Serve AI models over HTTP.")
    parser.add_argument("--version", action="version", version=f"litserve {__version__}")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run a server script (same as `python SCRIPT`)")
    run.add_argument("script", help="path to a server.py that calls LitServer(...).run()")
    run.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    args = parser.parse_args(argv)
    if args.command == "run":
        sys.argv = [args.script, *args.script_args]
        runpy.run_path(args.script, run_name="__main__")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
