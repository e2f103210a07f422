"""The ``litserve`` command: each subcommand is a typed function, turned into flags by jsonargparse."""

from __future__ import annotations

import inspect
import runpy
import sys
import typing
from typing import Callable, Dict, List, Optional

from litserve import __version__
from litserve.deploy.docker import dockerize
from litserve.deploy.kubernetes import kubernetes
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
    "dockerize": dockerize,
    "kubernetes": kubernetes,
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
    if argv and argv[0] in COMMANDS:
        argv = [argv[0], *_normalize_flags(COMMANDS[argv[0]], argv[1:])]
    config = parser.parse_args(argv)
    if not config.get("command"):
        parser.print_help()
        return 0
    name = config.command
    kwargs = {key: value for key, value in config[name].items() if not key.startswith("__")}
    try:
        result = COMMANDS[name](**kwargs)
    except (ValueError, FileNotFoundError) as exc:  # bad input: say what is wrong, no traceback
        print(f"litserve {name}: error: {exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def _normalize_flags(function: Callable[..., object], args: List[str]) -> List[str]:
    """Accept ``--min-replicas`` for ``--min_replicas``, and a bare ``--gpu`` for ``--gpu=true``."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        hints = {}
    booleans = {name for name, hint in hints.items() if hint is bool}
    normalized: List[str] = []
    for index, arg in enumerate(args):
        if not arg.startswith("--") or arg == "--":
            normalized.append(arg)
            continue
        flag, sep, value = arg.partition("=")
        name = flag[2:].replace("-", "_")
        following = args[index + 1] if index + 1 < len(args) else None
        if name in booleans and not sep and (following is None or following.lower() not in _BOOL_WORDS):
            sep, value = "=", "true"
        normalized.append(f"--{name}{sep}{value}")
    return normalized


if __name__ == "__main__":
    sys.exit(main())
