"""LitAPIs for the first-hour tests: missing request keys, near-miss hook names, slow set-ups."""

from __future__ import annotations

import os
import time

import litserve as ls


class LookupAPI(ls.LitAPI):
    """decode_request reads two keys; a lookup into its own table can fail too (a server bug, not the client's)."""

    def setup(self, device):
        self.units = {"m": 1.0, "km": 1000.0}

    def decode_request(self, request):
        return request["value"] * self.units[request.get("unit", "m")]

    def predict(self, x):
        return {"meters": x}


class TypoHooksAPI(ls.LitAPI):
    """Hooks with near-miss names, which are never called."""

    def setup(self, device):
        pass

    def decode_requests(self, request):
        return request["input"]

    def setup_model(self, device):
        pass

    def predict(self, x):
        return {"got": x}


class DelayedSetupAPI(ls.LitAPI):
    """setup takes ``SETUP_DELAY_S`` seconds (0.5 by default)."""

    def setup(self, device):
        time.sleep(float(os.environ.get("SETUP_DELAY_S", "0.5")))

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return {"output": x * 2}


class MarkedSleepAPI(ls.LitAPI):
    """predict touches ``started-<id>`` in ``MARK_DIR``, then sleeps ``sleep`` seconds."""

    def setup(self, device):
        self.mark_dir = os.environ["MARK_DIR"]

    def predict(self, request):
        open(os.path.join(self.mark_dir, f"started-{request['id']}"), "w").close()
        time.sleep(request["sleep"])
        return {"id": request["id"]}
