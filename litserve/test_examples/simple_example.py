"""Small LitAPIs that exercise each serving mode: plain, batched, streaming and torch."""

from __future__ import annotations

from typing import Any, Iterator, List

from litserve.api import LitAPI


class SimpleLitAPI(LitAPI):
    """``{"input": x}`` -> ``{"output": x**2}``."""

    def setup(self, device: str) -> None:
        self.model = lambda x: x**2

    def decode_request(self, request: dict) -> Any:
        return request["input"]

    def predict(self, x: Any) -> Any:
        return self.model(x)

    def encode_response(self, output: Any) -> dict:
        return {"output": output}


class SimpleBatchedAPI(LitAPI):
    """Like ``SimpleLitAPI``, batched with numpy: ``{"input": x}`` -> ``{"output": x**2}``."""

    def setup(self, device: str) -> None:
        self.model = lambda x: x**2

    def decode_request(self, request: dict) -> Any:
        import numpy as np

        return np.asarray(request["input"], dtype=np.float64)

    def predict(self, x: Any) -> Any:
        return self.model(x)

    def encode_response(self, output: Any) -> dict:
        return {"output": float(output)}


class SimpleStreamAPI(LitAPI):
    """Streams ``{"output": "<prompt> i"}`` for i in 0..2, one JSON line each."""

    def setup(self, device: str) -> None:
        self.model = lambda prompt, i: f"{prompt} {i}"

    def decode_request(self, request: dict) -> str:
        return request["prompt"]

    def predict(self, prompt: str) -> Iterator[str]:
        for i in range(3):
            yield self.model(prompt, i)

    def encode_response(self, outputs: Iterator[str]) -> Iterator[dict]:
        for output in outputs:
            yield {"output": output}


class SimpleTorchAPI(LitAPI):
    """A torch linear layer y = 2x + 1 on the worker's device: ``{"input": x}`` -> ``{"output": y}``."""

    def setup(self, device: str) -> None:
        import torch

        self.torch = torch
        self.device = device
        model = torch.nn.Linear(1, 1)
        with torch.no_grad():
            model.weight.fill_(2.0)
            model.bias.fill_(1.0)
        self.model = model.to(device).eval()

    def decode_request(self, request: dict) -> Any:
        return self.torch.tensor([float(request["input"])], device=self.device)

    def predict(self, x: Any) -> Any:
        with self.torch.inference_mode():
            return self.model(x.reshape(-1, 1)).reshape(x.shape)

    def unbatch(self, output: Any) -> List[Any]:
        return list(output)

    def encode_response(self, output: Any) -> dict:
        return {"output": float(output.reshape(-1)[0])}
