"""LitAPIs for the autoscaling-signal tests (tests/e2e/test_load_gauges.py)."""

from __future__ import annotations

import os
from pathlib import Path

import litserve as ls
from tests.apps import wait_for_file


class HeldAPI(ls.LitAPI):
    """predict writes its pid to ``started-<id>`` in ``gate_dir`` and waits for ``release-<id>``.

    With ``hold_restarts`` (one worker), every ``setup`` after the first waits for ``release-setup``, so a
    test can keep a restarted worker in setup.
    """

    def __init__(self, gate_dir: str, hold_restarts: bool = False, **options):
        super().__init__(**options)
        self.gate_dir = Path(gate_dir)
        self.hold_restarts = hold_restarts

    def setup(self, device):
        if self.hold_restarts and any(self.gate_dir.glob("setup-*")):
            wait_for_file(self.gate_dir / "release-setup", timeout=60)
        (self.gate_dir / f"setup-{os.getpid()}").touch()

    def predict(self, request):
        request_id = request["id"]
        (self.gate_dir / f"started-{request_id}").write_text(str(os.getpid()))
        wait_for_file(self.gate_dir / f"release-{request_id}", timeout=60)
        return {"id": request_id}
