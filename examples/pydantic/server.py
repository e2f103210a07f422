"""Validated requests and typed responses with pydantic.

Run:    python examples/pydantic/server.py
Query:  curl -X POST http://127.0.0.1:8000/predict -H "Content-Type: application/json" -d '{"input": 4.0}'
Docs:   http://127.0.0.1:8000/docs
"""

import os

from pydantic import BaseModel

import litserve as ls


class PredictRequest(BaseModel):
    input: float


class PredictResponse(BaseModel):
    output: float


class SimpleLitAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request: PredictRequest) -> float:
        return request.input

    def predict(self, x):
        return self.model(x)

    def encode_response(self, output: float) -> PredictResponse:
        return PredictResponse(output=output)


if __name__ == "__main__":
    server = ls.LitServer(SimpleLitAPI(), accelerator="cpu")
    server.run(port=int(os.environ.get("PORT", 8000)))
