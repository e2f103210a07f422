"""Option validation and precedence, without starting servers."""

from __future__ import annotations

import pytest

import litserve as ls
from litserve.options import resolve_api_options, resolve_max_payload_size, resolve_timeout
from tests.apps import SquareAPI, StreamAPI


def test_litapi_options_win_over_server_options_which_win_over_defaults():
    explicit = {"max_batch_size": 4}
    opts = resolve_api_options(explicit, {"max_batch_size": 8, "batch_timeout": 0.01})
    assert opts.max_batch_size == 4
    assert opts.batch_timeout == 0.01
    assert opts.api_path == "/predict"
    assert resolve_api_options({}, {}).max_batch_size == 1


def test_server_applies_resolved_options_to_the_api():
    api = SquareAPI(api_path="/square")
    server = ls.LitServer(api, max_batch_size=8, api_path="/ignored", accelerator="cpu")
    assert server.api_options[0].api_path == "/square"
    assert api.max_batch_size == 8


def test_litapi_subclass_without_super_init_still_works():
    class NoSuper(ls.LitAPI):
        def __init__(self):
            self.x = 1

        def predict(self, x):
            return x

    server = ls.LitServer(NoSuper(), accelerator="cpu", max_batch_size=2)
    assert server.api_options[0].max_batch_size == 2


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 1.5}, "max_batch_size"),
        ({"batch_timeout": -1}, "batch_timeout"),
        ({"workers_per_device": 0}, "workers_per_device"),
        ({"accelerator": "tpu9"}, "accelerator"),
        ({"devices": 0}, "devices"),
        ({"devices": "many"}, "devices"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"api_path": "predict"}, "api_path"),
        ({"healthcheck_path": "health"}, "healthcheck_path"),
        ({"max_payload_size": -5}, "max_payload_size"),
        ({"restart_workers": "yes"}, "restart_workers"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"metrics_path": "metrics"}, "metrics_path"),
        ({"metrics_path": "/health"}, "metrics_path"),
        ({"healthcheck_path": "/livez"}, "healthcheck_path"),
        ({"info_path": "/metrics"}, "info_path"),
        ({"model_metadata": {"created": object()}}, "model_metadata"),
        ({"timeout": 1, "batch_timeout": 2}, "batch_timeout"),
        ({"loop": "continuous"}, "loop"),
        ({"callbacks": [object()]}, "callbacks"),
    ],
)
def test_invalid_options_fail_at_construction_naming_the_option(kwargs, option):
    with pytest.raises(ValueError, match=option):
        ls.LitServer(SquareAPI(), **kwargs)


def test_invalid_litapi_options_name_the_option():
    with pytest.raises(ValueError, match="max_batch_size"):
        ls.LitServer(SquareAPI(max_batch_size=-1))
    with pytest.raises(ValueError, match="stream"):
        ls.LitServer(SquareAPI(stream="yes"))


def test_timeout_can_be_disabled():
    assert resolve_timeout(False) is None
    assert resolve_timeout(-1) is None
    assert resolve_timeout(2) == 2.0


def test_payload_size_accepts_units():
    assert resolve_max_payload_size("10MB") == 10 * 1024 * 1024
    assert resolve_max_payload_size(1000) == 1000
    assert resolve_max_payload_size(None) is None


def test_predict_must_be_implemented():
    class Empty(ls.LitAPI):
        pass

    with pytest.raises(ValueError, match="must implement predict"):
        ls.LitServer(Empty())


def test_generator_predict_requires_stream_true():
    with pytest.raises(ValueError, match="stream=True"):
        ls.LitServer(StreamAPI())


def test_async_hooks_require_enable_async():
    class AsyncPredict(ls.LitAPI):
        async def predict(self, x):
            return x

    with pytest.raises(ValueError, match="enable_async=True"):
        ls.LitServer(AsyncPredict())


def test_duplicate_api_paths_are_rejected():
    with pytest.raises(ValueError, match="used twice"):
        ls.LitServer([SquareAPI(), SquareAPI()])


def test_gpu_request_without_gpu_is_a_clear_error(monkeypatch):
    import litserve.devices as devices

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        ls.LitServer(SquareAPI(), accelerator="cuda")
    with pytest.raises(RuntimeError, match="no GPU"):
        ls.LitServer(SquareAPI(), accelerator="gpu")
    assert ls.LitServer(SquareAPI(), accelerator="auto").accelerator == "cpu"


def test_devices_expand_into_worker_slots(monkeypatch):
    import litserve.devices as devices

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)
    assert devices.resolve_devices("cuda", [0, 3]) == ["cuda:0", "cuda:3"]
    assert devices.resolve_devices("cuda", 2) == ["cuda:0", "cuda:1"]
    assert devices.resolve_devices("cuda", "auto") == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    with pytest.raises(RuntimeError, match="only 4 exist"):
        devices.resolve_devices("cuda", [5])
    assert devices.resolve_devices("cpu", "auto") == ["cpu"]


def test_fastapi_request_and_response_are_reexported():
    from fastapi import Request, Response

    assert ls.Request is Request
    assert ls.Response is Response
