"""``litserve run SCRIPT [ARGS...]``: run a server script exactly as ``python SCRIPT [ARGS...]`` would."""

from __future__ import annotations

import os
import runpy
import sys
from typing import List, Optional


class ScriptNotFoundError(Exception):
    """The script given to ``litserve run`` does not exist or cannot be run."""


def run(script: str, script_args: Optional[List[str]] = None) -> None:
    """Run a server script, the same as 'python SCRIPT [ARGS...]'.

    The script's folder comes first on sys.path (so it can import a sibling model.py), it runs as
    __main__, and every argument after it reaches it untouched in sys.argv.

    Args:
        script: path to a Python file (or a folder with a __main__.py) that starts a LitServer.
        script_args: arguments for the script; on the command line, everything after SCRIPT.
    """
    path = os.path.abspath(script)
    if not os.path.exists(path):
        raise ScriptNotFoundError(f"no such file: {script}")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "__main__.py")):
        raise ScriptNotFoundError(f"{script} is a folder without a __main__.py")
    script_dir = path if os.path.isdir(path) else os.path.dirname(os.path.realpath(path))
    _put_first_on_path(script_dir)
    sys.argv = [script, *(script_args or [])]
    runpy.run_path(path, run_name="__main__")


def _put_first_on_path(script_dir: str) -> None:
    """``python SCRIPT`` puts the script's folder where the launcher's own folder is (``sys.path[0]``).

    The launcher's folder stays on the path, at the end, only when litserve itself is imported from it (a
    source checkout run with ``python -m litserve``), so spawned workers can still import litserve.
    """
    import litserve

    launcher_dir = os.path.abspath(sys.path[0] or os.curdir) if sys.path else None
    sys.path[0:1] = [script_dir]
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(litserve.__file__)))
    if launcher_dir is not None and launcher_dir == package_root and launcher_dir != script_dir:
        sys.path.append(launcher_dir)
