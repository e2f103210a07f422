"""The ``litserve`` command: each subcommand is a typed function, turned into flags by jsonargparse."""

from __future__ import annotations

import inspect
import runpy
import sys
from typing import Callable, Dict, List, Optional

from litserve import __version__


def run(script: str) -> None:
    """Run a server script, the same as ``python SCRIPT [ARGS...]``.

    Args:
        script: path to a server.py that calls LitServer(...).run(); arguments after it go to the script.
    """
    # Replaced by the full implementation (issue 14); arguments after SCRIPT are passed through verbatim.
    sys.argv = [script, *sys.argv[sys.argv.index(script) + 1 :]] if script in sys.argv else [script]
    runpy.run_path(script, run_name="__main__")


# The registry of subcommands: name -> function. A function's signature becomes the subcommand's flags
# (positional parameters become positional arguments), its docstring the help text.
COMMANDS: Dict[str, Callable[..., object]] = {
    "run": run,
}


def build_parser():
    """The jsonargparse parser with one subcommand per entry of ``COMMANDS``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="litserve", description="Serve AI models over HTTP.", exit_on_error=True)
    parser.add_argument("--version", action="version", version=f"litserve {__version__}")
    subcommands = parser.add_subcommands(required=False, dest="command")
    for name, function in COMMANDS.items():
        sub = ArgumentParser(description=inspect.getdoc(function))
        sub.add_function_arguments(function, as_positional=True)
        subcommands.add_subcommand(name, sub, help=(inspect.getdoc(function) or "").split("\n")[0])
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["run"] and len(argv) > 1 and not argv[1].startswith("-"):
        run(argv[1])  # everything after the script belongs to the script, not to us
        return 0
    config = parser.parse_args(argv)
    if not config.get("command"):
        parser.print_help()
        return 0
    name = config.command
    kwargs = {key: value for key, value in config[name].items() if not key.startswith("__")}
    result = COMMANDS[name](**kwargs)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
