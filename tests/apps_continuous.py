"""Toy LitAPIs for the continuous-batching loop: no model, every step is observable from the tests."""

from __future__ import annotations

import os

from fastapi import HTTPException

import litserve as ls
from litserve.loops import ContinuousBatchingLoop, Output
from litserve.utils import LitAPIStatus


class CountingGenerator(ls.LitAPI):
    """Each request ``{"prefix": "a", "n": 3}`` streams ``n`` items, one per step, then finishes.

    Every item says which step made it and how many requests were running then. Optional request fields:
    ``hold``: after the first item, produce nothing until the file ``<gate_dir>/<hold>`` exists;
    ``hold_first``: the same, before the first item; ``fail_at``: report ERROR after that many items
    (``fail_status``: as an HTTPException with that status); ``finish_next_step``: end the request one step
    after its last item instead of in the same step. ``cancel`` appends the uid to ``<gate_dir>/cancelled``.

    Written as LitServe's users write a step: OK items, then ``Output(uid, "", FINISH_STREAMING)``.
    """

    def __init__(self, gate_dir: str, max_batch_size: int = 4, **kwargs) -> None:
        super().__init__(stream=True, max_batch_size=max_batch_size, loop=ContinuousBatchingLoop(), **kwargs)
        self.gate_dir = gate_dir

    def setup(self, device):
        self.running = {}
        self.steps = 0

    def add_request(self, uid, request):
        if not isinstance(request.get("n"), int):
            raise HTTPException(422, "n must be an integer")
        self.running[uid] = {"request": request, "sent": 0}

    def has_capacity(self):
        return len(self.running) < self.max_batch_size

    def has_active_requests(self):
        return bool(self.running)

    def cancel(self, uid):
        self.running.pop(uid, None)
        with open(os.path.join(self.gate_dir, "cancelled"), "a") as file:
            file.write(f"{uid}\n")

    def _open(self, name):
        return name is None or os.path.exists(os.path.join(self.gate_dir, name))

    def step(self, prev_outputs):
        self.steps += 1
        outputs = []
        for uid, state in list(self.running.items()):
            request, sent = state["request"], state["sent"]
            if sent >= request["n"]:  # every item is out (a request may ask for none)
                del self.running[uid]
                outputs.append(Output(uid, "", LitAPIStatus.FINISH_STREAMING))
                continue
            if sent == 0 and not self._open(request.get("hold_first")):
                continue
            if sent == 1 and not self._open(request.get("hold")):
                continue
            if request.get("fail_at") == sent:
                del self.running[uid]
                status = request.get("fail_status")
                error = HTTPException(status, "refused by the toy API") if status else RuntimeError("toy failure")
                outputs.append(Output(uid, error, LitAPIStatus.ERROR))
                continue
            state["sent"] = sent + 1
            item = {"prefix": request["prefix"], "i": sent, "step": self.steps, "running": len(self.running)}
            outputs.append(Output(uid, item, LitAPIStatus.OK))
            if sent + 1 >= request["n"] and not request.get("finish_next_step"):
                del self.running[uid]
                outputs.append(Output(uid, "", LitAPIStatus.FINISH_STREAMING))
        return outputs

    def encode_response(self, output):
        return {"item": output}
