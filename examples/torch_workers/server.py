"""A torch model served by two worker processes (on each device).

Run:    python examples/torch_workers/server.py
Query:  curl -X POST http://127.0.0.1:8000/predict -H "Content-Type: application/json" -d '{"input": 3.0}'

Each reply names the worker process that computed it, so concurrent requests show both workers at work.
"""

import os

import torch
from torch import nn

import litserve as ls


class Linear(nn.Module):
    """y = 2x + 1."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.linear.weight.data.fill_(2.0)
        self.linear.bias.data.fill_(1.0)

    def forward(self, x):
        return self.linear(x)


class LinearAPI(ls.LitAPI):
    def setup(self, device):
        torch.set_num_threads(1)
        self.device = device
        self.model = Linear().to(device).eval()

    def decode_request(self, request):
        return torch.tensor([float(request["input"])], device=self.device)

    @torch.inference_mode()
    def predict(self, x):
        return self.model(x[None, :])

    def encode_response(self, output):
        return {"output": float(output), "worker_pid": os.getpid()}


if __name__ == "__main__":
    # accelerator="cuda", devices=4 would start 4 x 2 workers on cuda:0..cuda:3.
    server = ls.LitServer(LinearAPI(), accelerator="auto", workers_per_device=2)
    server.run(port=int(os.environ.get("PORT", 8000)))
