"""The ``litserve`` command: each subcommand is a typed function, turned into flags by jsonargparse."""

from __future__ import annotations

import inspect
import runpy
import sys
from typing import Callable, Dict, List, Optional

from litserve import __version__
from litserve.llm.cli import llm


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
    "llm": llm,
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
    config = parser.parse_args(_underscored_flags(argv))
    if not config.get("command"):
        parser.print_help()
        return 0
    name = config.command
    kwargs = {key: value for key, value in config[name].items() if not key.startswith("__")}
    result = COMMANDS[name](**kwargs)
    return result if isinstance(result, int) else 0


def _underscored_flags(argv: List[str]) -> List[str]:
    """Accept ``--max-total-token-num`` as well as the ``--max_total_token_num`` the parser defines."""
    normalized = []
    for arg in argv:
        if arg.startswith("--") and "-" in arg[2:].split("=", 1)[0]:
            name, sep, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + sep + value
        normalized.append(arg)
    return normalized


if __name__ == "__main__":
    sys.exit(main())
