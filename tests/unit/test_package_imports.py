"""``import litserve`` stays light: worker processes re-import the user's script and must not load the HTTP stack."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_package_and_subclassing_litapi_loads_no_web_framework():
    # What a spawned worker runs of a user's server.py before the ``__main__`` guard.
    code = (
        "import sys\n"
        "import litserve as ls\n"
        "class API(ls.LitAPI):\n"
        "    def predict(self, x):\n"
        "        return x\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    assert run_python(code) == "[]"


def test_every_public_name_resolves_as_before():
    code = (
        "import litserve as ls\n"
        "from litserve import *\n"
        "from fastapi import HTTPException\n"
        "assert ls.HTTPException is HTTPException\n"
        "assert issubclass(ls.OpenAISpec, ls.LitSpec)\n"
        "assert ls.test_examples.SimpleLitAPI.__name__ == 'SimpleLitAPI'\n"
        "print(sorted(name for name in ls.__all__ if getattr(ls, name, None) is None))"
    )
    assert run_python(code) == "[]"
    missing = run_python("import litserve as ls\ntry:\n    ls.NoSuchThing\nexcept AttributeError as e:\n    print(e)")
    assert "NoSuchThing" in missing
