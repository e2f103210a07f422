"""A LitAPI that stops in ``ls.set_trace()`` inside its worker process, for the debugger tests."""

from __future__ import annotations

import litserve as ls


class DebuggedAPI(ls.LitAPI):
    """``{"input": x}`` -> ``{"output": 2x}``; stops in pdb first (for x < 0 only when debugging is on)."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        doubled = x * 2
        if x < 0:
            ls.set_trace_if_debug()
        else:
            ls.set_trace()
        return doubled

    def encode_response(self, output):
        return {"output": output}
