"""The ``litserve`` command: each subcommand is a typed function, turned into flags by jsonargparse."""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Callable, Dict, List, Optional

from litserve import __version__
from litserve.deploy.docker import dockerize
from litserve.deploy.kubernetes import kubernetes
from litserve.llm.cli import llm
from litserve.run_script import ScriptNotFoundError, run

# The registry of subcommands: name -> function. A function's signature becomes the subcommand's flags
# (positional parameters become positional arguments), its Google-style docstring the help text.
COMMANDS: Dict[str, Callable[..., object]] = {
    "run": run,
    "dockerize": dockerize,
    "kubernetes": kubernetes,
    "llm": llm,
}


def _summary(function: Callable[..., object]) -> str:
    """The docstring up to its ``Args:`` section (jsonargparse shows each argument's own line beside it)."""
    return (inspect.getdoc(function) or "").split("\nArgs:")[0].strip()


def build_parser():
    """The jsonargparse parser with one subcommand per entry of ``COMMANDS``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="litserve", description="Serve AI models over HTTP.", exit_on_error=True)
    parser.add_argument("--version", action="version", version=f"litserve {__version__}")
    subcommands = parser.add_subcommands(required=False, dest="command")
    for name, function in COMMANDS.items():
        sub = ArgumentParser(prog=f"litserve {name}", description=_summary(function))
        sub.add_function_arguments(function, as_positional=True, as_group=False)
        subcommands.add_subcommand(name, sub, help=_summary(function).split("\n")[0])
    return parser


def _split_run_arguments(argv: List[str]) -> Optional[List[str]]:
    """``run [--] SCRIPT ARGS...``: the script and everything after it belong to the script, not to us."""
    rest = argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    elif not rest or rest[0].startswith("-"):
        return None  # no script: ``--help``, or an error jsonargparse explains
    return rest


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``litserve`` and ``python -m litserve``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        script_and_args = _split_run_arguments(argv)
        if script_and_args is None and len(argv) == 1:
            print("litserve run: give the server script to run, e.g. 'litserve run server.py'", file=sys.stderr)
            return 2
        if script_and_args:
            try:
                run(script_and_args[0], script_and_args[1:])
            except ScriptNotFoundError as exc:
                print(f"litserve run: {exc}", file=sys.stderr)
                return 2
            return 0
    parser = build_parser()
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
    """Accept ``--min-replicas`` for ``--min_replicas``, a bare ``--gpu`` for ``--gpu=true``, ``--no-gpu`` for false."""
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
        if not sep and name.startswith("no_") and name[3:] in booleans:
            normalized.append(f"--{name[3:]}=false")
            continue
        following = args[index + 1] if index + 1 < len(args) else None
        if name in booleans and not sep and (following is None or following.lower() not in _BOOL_WORDS):
            sep, value = "=", "true"
        normalized.append(f"--{name}{sep}{value}")
    return normalized


if __name__ == "__main__":
    sys.exit(main())
