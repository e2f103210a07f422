"""Starts a real litserve server for the end-to-end tests.

python -m tests.launch --api tests.apps:SquareAPI --port 8000 [--api-kwargs JSON] [--server-kwargs JSON]
"""

from __future__ import annotations

import argparse
import importlib
import json

import litserve as ls


def load(target: str):
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


SPECS = {"openai": ls.OpenAISpec, "openai_embedding": ls.OpenAIEmbeddingSpec}


def build_spec(value):
    """``{"__spec__": "openai", **kwargs}`` in JSON stands for ``OpenAISpec(**kwargs)``."""
    if isinstance(value, dict) and "__spec__" in value:
        kwargs = dict(value)
        return SPECS[kwargs.pop("__spec__")](**kwargs)
    return value


def built_specs(kwargs: dict) -> dict:
    return {key: build_spec(value) if key == "spec" else value for key, value in kwargs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", action="append", required=True, help="module:Class; repeat for several APIs")
    parser.add_argument("--api-kwargs", action="append", default=None, help="JSON kwargs, one per --api")
    parser.add_argument("--server-kwargs", default="{}")
    parser.add_argument("--run-kwargs", default="{}")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    api_kwargs = args.api_kwargs or ["{}"] * len(args.api)
    apis = [load(target)(**built_specs(json.loads(kwargs))) for target, kwargs in zip(args.api, api_kwargs)]
    server_kwargs = built_specs(json.loads(args.server_kwargs))
    server = ls.LitServer(apis if len(apis) > 1 else apis[0], **server_kwargs)
    run_kwargs = {"generate_client_file": False, "host": "127.0.0.1", **json.loads(args.run_kwargs)}
    server.run(port=args.port, **run_kwargs)


if __name__ == "__main__":
    main()
