"""LitAPIs the end-to-end tests serve. Each one records or exposes what the tests need to observe."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Optional

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

import litserve as ls


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    """Block until ``path`` exists: lets a test decide exactly when a hook may go on."""
    give_up_at = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > give_up_at:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


class SquareAPI(ls.LitAPI):
    """The README's hello world."""

    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return self.model(x)

    def encode_response(self, output):
        return {"output": output}


class ReverseAPI(ls.LitAPI):
    """Answers with the text it got, reversed: bodies as large as the request cross both ways. Batches."""

    def decode_request(self, request):
        return request["text"]

    def predict(self, texts):
        return [text[::-1] for text in texts]

    def encode_response(self, output):
        return {"text": output, "length": len(output)}


class PidAPI(ls.LitAPI):
    """Answers with the worker's process id and device."""

    def setup(self, device):
        self.device = device

    def predict(self, x):
        return {"pid": os.getpid(), "device": self.device}


class PredictRequest(BaseModel):
    input: float


class PredictResponse(BaseModel):
    output: float


class PydanticAPI(ls.LitAPI):
    """The seeds' pydantic example: request validated, response typed."""

    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request: PredictRequest) -> float:
        return request.input

    def predict(self, x):
        return self.model(x)

    def encode_response(self, output: float) -> PredictResponse:
        return PredictResponse(output=output)


class BatchRecordingAPI(ls.LitAPI):
    """Answers with the size of the batch each request was part of."""

    def __init__(self, **options):
        super().__init__(**options)

    def setup(self, device):
        pass

    def decode_request(self, request):
        if request.get("fail_decode"):
            raise ValueError("bad input")
        return request["input"]

    def batch(self, inputs):
        return list(inputs)

    def predict(self, xs):
        return [{"input": x, "batch_size": len(xs)} for x in xs]

    def unbatch(self, output):
        return output


class WrongUnbatchAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def predict(self, xs):
        return xs

    def unbatch(self, output):
        return list(output)[:-1]


class TorchBatchAPI(ls.LitAPI):
    """Default batch/unbatch with torch tensors: decode makes 1-D tensors, predict sees a stacked 2-D batch."""

    def setup(self, device):
        import torch

        self.torch = torch
        self.device = device

    def decode_request(self, request):
        return self.torch.tensor(request["input"], dtype=self.torch.float32, device=self.device)

    def predict(self, x):
        return {"shape": list(x.shape), "sums": x.sum(dim=1)}

    def unbatch(self, output):
        return [{"batch_shape": output["shape"], "sum": s.item()} for s in output["sums"]]


class StreamAPI(ls.LitAPI):
    """Streams ``n`` items; with ``gate_dir``, waits for file ``go-<i>`` before producing item ``i`` (i >= 1)."""

    def __init__(self, gate_dir: Optional[str] = None, as_text: bool = False, fail_at: Optional[int] = None, **opt):
        super().__init__(**opt)
        self.gate_dir = Path(gate_dir) if gate_dir else None
        self.as_text = as_text
        self.fail_at = fail_at

    def setup(self, device):
        pass

    def decode_request(self, request):
        return request.get("n", 3)

    def predict(self, n):
        try:
            for i in range(n):
                if self.gate_dir is not None and i > 0:
                    wait_for_file(self.gate_dir / f"go-{i}")
                if self.fail_at == i:
                    raise RuntimeError("generation failed")
                if self.gate_dir is not None:
                    (self.gate_dir / f"produced-{i}").touch()
                yield i
        finally:
            if self.gate_dir is not None:
                (self.gate_dir / "generator-closed").touch()

    def encode_response(self, outputs):
        for i in outputs:
            yield f"token{i} " if self.as_text else {"output": i}


class BatchedStreamAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return request["input"]

    def batch(self, inputs):
        return list(inputs)

    def predict(self, xs):
        for step in range(3):
            yield [f"{x}-{step}" for x in xs]

    def unbatch(self, output):
        return output

    def encode_response(self, outputs):
        for batch in outputs:
            yield [{"output": item} for item in batch]


class GatedAPI(ls.LitAPI):
    """predict writes ``started-<id>`` and then waits for ``release-<id>`` (if ``block`` is set in the request)."""

    def __init__(self, gate_dir: str, **options):
        super().__init__(**options)
        self.gate_dir = Path(gate_dir)

    def setup(self, device):
        pass

    def predict(self, request):
        request_id = request["id"]
        (self.gate_dir / f"started-{request_id}").touch()
        if request.get("block"):
            wait_for_file(self.gate_dir / f"release-{request_id}")
        return {"id": request_id}


class SleepAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def predict(self, request):
        time.sleep(request["sleep"])
        return {"slept": request["sleep"]}


class FailingAPI(ls.LitAPI):
    """Raises in predict: a plain error, or an HTTPException the client should see."""

    def setup(self, device):
        pass

    def predict(self, request):
        if request.get("http_error"):
            raise HTTPException(status_code=418, detail="I'm a teapot")
        raise ValueError("secret internal detail: /etc/model.bin is corrupt")


class SetupFailsAPI(ls.LitAPI):
    def setup(self, device):
        raise RuntimeError("weights file missing")

    def predict(self, x):
        return x


class SetupExitsAPI(ls.LitAPI):
    """setup ends the process with status 0, as a native library might: the worker never became ready."""

    def setup(self, device):
        os._exit(0)

    def predict(self, x):
        return x


class SlowSetupAPI(ls.LitAPI):
    """setup waits for ``setup-go`` in ``gate_dir``; health() reads ``unhealthy`` from there."""

    def __init__(self, gate_dir: str, **options):
        super().__init__(**options)
        self.gate_dir = Path(gate_dir)

    def setup(self, device):
        wait_for_file(self.gate_dir / "setup-go", timeout=60)

    def predict(self, x):
        return {"ok": True}

    def health(self) -> bool:
        return not (self.gate_dir / "unhealthy").exists()


class ContextAPI(ls.LitAPI):
    """Passes values between hooks through ``context``."""

    def setup(self, device):
        pass

    def decode_request(self, request, context):
        context["seen_by_decode"] = request["input"]
        return request["input"]

    def predict(self, x, context):
        if isinstance(context, list):
            for ctx in context:
                ctx["batch_size"] = len(context)
            return x
        context["doubled"] = x * 2
        return x

    def encode_response(self, output, context):
        return {"output": output, "context": context}


class BatchedContextAPI(ContextAPI):
    def batch(self, inputs):
        return list(inputs)

    def unbatch(self, output):
        return output


class AsyncAPI(ls.LitAPI):
    def __init__(self, **options):
        super().__init__(enable_async=True, **options)

    async def setup(self, device):
        await asyncio.sleep(0)

    async def decode_request(self, request):
        return request["input"]

    async def predict(self, x):
        await asyncio.sleep(0)
        return x + 1

    async def encode_response(self, output):
        return {"output": output}


class AuthorizeAPI(SquareAPI):
    """Custom authorization through a FastAPI dependency, as LitServe users write it."""

    def authorize(self, auth: HTTPAuthorizationCredentials = Depends(HTTPBearer())):
        if auth.credentials != "letmein":
            raise HTTPException(status_code=401, detail="Authorization failed")


class FormAPI(ls.LitAPI):
    """Reads an uploaded file and a form field."""

    def setup(self, device):
        pass

    def decode_request(self, request):
        upload = request["file"]
        return {"name": upload.filename, "size": len(upload.file.read()), "label": request.get("label")}

    def predict(self, x):
        return x


class ResponseObjectAPI(ls.LitAPI):
    """encode_response returns a ready Response with its own status and headers."""

    def setup(self, device):
        pass

    def predict(self, x):
        return x

    def encode_response(self, output):
        return ls.Response(content="created", status_code=201, headers={"x-model": "v1"}, media_type="text/plain")


class NumpyAPI(ls.LitAPI):
    def setup(self, device):
        import numpy

        self.np = numpy

    def predict(self, request):
        return {"array": self.np.arange(3, dtype=self.np.float32) * request["scale"]}


class GatedPidAPI(PidAPI):
    """Slow enough that concurrent requests spread over workers."""

    def predict(self, x):
        time.sleep(0.05)
        return super().predict(x)


class ContextEchoChatAPI(ls.LitAPI):
    """Replies with the request's options as JSON, to show what reaches the hooks."""

    def setup(self, device):
        pass

    def predict(self, messages, context):
        import json

        yield json.dumps(
            {
                "messages": messages,
                "response_format": context.get("response_format"),
                "temperature": context.get("temperature"),
                "max_tokens": context.get("max_tokens"),
                "max_completion_tokens": context.get("max_completion_tokens"),
                "stop": context.get("stop"),
                "metadata": context.get("metadata"),
            }
        )


class FailingChatAPI(ls.LitAPI):
    """Streams one word, then fails."""

    def setup(self, device):
        pass

    def predict(self, messages):
        yield "partial"
        raise RuntimeError("the model ran out of memory")


class LengthLimitedChatAPI(ls.LitAPI):
    """Yields one token per item up to max_tokens, reporting usage."""

    def setup(self, device):
        pass

    def predict(self, messages, context):
        limit = context.get("max_tokens") or 100
        for i in range(min(limit, 5)):
            yield {"content": f"t{i} ", "completion_tokens": 1, "prompt_tokens": 7}


class BatchedChatAPI(ls.LitAPI):
    """Batched chat: each step yields one word for every request in the batch."""

    def setup(self, device):
        pass

    def batch(self, inputs):
        return inputs

    def predict(self, batch):
        for step in range(3):
            yield [f"{len(batch)}:{messages[-1]['content']}:{step} " for messages in batch]

    def unbatch(self, output):
        return output


class SeedStyleLinearAPI(ls.LitAPI):
    """The seeds' GPU example as written there: fastapi Request/Response annotations, a torch module."""

    def setup(self, device):
        import torch

        class Linear(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(1, 1)
                self.linear.weight.data.fill_(2.0)
                self.linear.bias.data.fill_(1.0)

            def forward(self, x):
                return self.linear(x)

        self.torch = torch
        self.model = Linear().to(device)
        self.device = device

    def decode_request(self, request: ls.Request):
        content = request["input"]
        return self.torch.tensor([content], device=self.device)

    def predict(self, x):
        return self.model(x[None, :])

    def encode_response(self, output) -> ls.Response:
        return {"output": float(output)}


class DocsSummaryStyleAPI(ls.LitAPI):
    """LitServe 0.2.x style: only setup and predict, default decode/encode."""

    def setup(self, device):
        self.model = lambda x: x * 2

    def predict(self, request):
        return {"output": self.model(request["input"])}


# --- reliability and operations (tests/e2e/test_reliability.py, test_metrics.py) -----------------------


class CrashAPI(ls.LitAPI):
    """Answers with its pid; ``{"crash": how}`` kills the worker (segfault, os._exit(code=7), SystemExit), and
    ``{"id": i, "sleep": s}`` writes ``started-<i>`` in ``gate_dir`` and then sleeps ``s`` seconds; with
    ``"block": true`` it first waits for ``release-<i>`` there."""

    def __init__(self, gate_dir: Optional[str] = None, **options):
        super().__init__(**options)
        self.gate_dir = Path(gate_dir) if gate_dir else None

    def setup(self, device):
        pass

    def predict(self, request):
        if self.gate_dir is not None and "id" in request:
            (self.gate_dir / f"started-{request['id']}").touch()
            if request.get("block"):
                wait_for_file(self.gate_dir / f"release-{request['id']}")
        how = request.get("crash")
        if how == "segfault":
            import ctypes

            ctypes.string_at(0)
        elif how == "exit":
            os._exit(request.get("code", 7))
        elif how == "system_exit":
            raise SystemExit(5)  # escapes the hooks' error handling, like a bug in the loop itself
        time.sleep(request.get("sleep", 0))
        return {"pid": os.getpid()}
