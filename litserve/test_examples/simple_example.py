"""Small LitAPIs that exercise each serving mode, answering as LitServe's own ``test_examples`` do."""

from __future__ import annotations

from typing import Any, Iterator

from litserve.api import LitAPI


class SimpleLitAPI(LitAPI):
    """``{"input": x}`` -> ``{"output": x**2}``."""

    def setup(self, device: str) -> None:
        self.model = lambda x: x**2

    def decode_request(self, request: Any) -> Any:
        return request["input"]

    def predict(self, x: Any) -> Any:
        return self.model(x)

    def encode_response(self, output: Any) -> dict:
        return {"output": output}


class SimpleBatchedAPI(LitAPI):
    """``SimpleLitAPI`` on numpy arrays, so a batch squares in one call: ``{"input": 4}`` -> ``{"output": 16.0}``."""

    def setup(self, device: str) -> None:
        self.model = lambda x: x**2

    def decode_request(self, request: Any) -> Any:
        import numpy as np

        return np.asarray(request["input"])

    def predict(self, x: Any) -> Any:
        return self.model(x)

    def encode_response(self, output: Any) -> dict:
        return {"output": output}


class SimpleTorchAPI(LitAPI):
    """A torch linear layer y = 2x + 1 on the worker's device: ``{"input": 4.0}`` -> ``{"output": 9.0}``."""

    def setup(self, device: str) -> None:
        import torch

        layer = torch.nn.Linear(1, 1)
        with torch.no_grad():
            layer.weight.fill_(2.0)
            layer.bias.fill_(1.0)
        self.model = layer.to(device)

    def decode_request(self, request: Any) -> Any:
        import torch

        return torch.tensor([request["input"]], device=self.device)

    def predict(self, x: Any) -> Any:
        return self.model(x.unsqueeze(0))  # the layer wants a batch dimension

    def encode_response(self, output: Any) -> dict:
        return {"output": float(output)}


class SimpleStreamAPI(LitAPI):
    """Streams ``{"output": "<i>: <input>"}`` for i in 0, 1, 2; serve it with ``stream=True``.

    Example::

        ls.LitServer(SimpleStreamAPI(), stream=True).run(port=8000)
        # POST /predict {"input": "Hello"} -> {"output": "0: Hello"} {"output": "1: Hello"} {"output": "2: Hello"}
    """

    def setup(self, device: str) -> None:
        self.model = lambda i, x: f"{i}: {x}"

    def decode_request(self, request: Any) -> Any:
        return request["input"]

    def predict(self, x: Any) -> Iterator[str]:
        for i in range(3):
            yield self.model(i, x)

    def encode_response(self, output_stream: Iterator[str]) -> Iterator[dict]:
        for output in output_stream:
            yield {"output": output}
