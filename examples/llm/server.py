"""Serve a causal LM with continuous batching: LightLLM's /generate and OpenAI's /v1 routes on one server.

    python examples/llm/build_model.py /tmp/tiny-llama        # once, offline
    MODEL_DIR=/tmp/tiny-llama python examples/llm/server.py   # or: litserve llm /tmp/tiny-llama --port 8000

Without MODEL_DIR the seeded tiny model is built in ./tiny-llama on first start.
"""

import os

import litserve as ls
from litserve.llm import LLMAPI
from litserve.llm.testing import build_tiny_model

if __name__ == "__main__":
    model_dir = os.environ.get("MODEL_DIR") or "tiny-llama"
    if not os.path.isdir(model_dir):
        build_tiny_model(model_dir, arch="llama")
    api = LLMAPI(model_dir, max_total_token_num=4096)
    server = ls.LitServer(api, accelerator="auto", timeout=600)
    server.run(port=int(os.environ.get("PORT", 8000)), generate_client_file=False)
