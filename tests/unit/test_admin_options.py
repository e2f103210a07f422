"""LitServer options added for LitServe compatibility: each bad value fails at construction, naming itself."""

from __future__ import annotations

import pytest

import litserve as ls
from litserve.admin import bearer_token_matches
from litserve.options import resolve_workers_per_device
from tests.apps import SquareAPI


def test_workers_per_device_int_list_and_dict():
    paths = ["/a", "/b"]
    assert resolve_workers_per_device(3, paths) == [3, 3]
    assert resolve_workers_per_device([2, 1], paths) == [2, 1]
    assert resolve_workers_per_device({"/b": 4, "/a": 1}, paths) == [1, 4]


@pytest.mark.parametrize(
    "value, message",
    [
        ([1], "1 entries for 2 APIs"),
        ({"/a": 1, "/c": 2}, "'/c', which no API serves"),
        ({"/a": 1}, "no entry for api_path '/b'"),
        ([1, 0], "integers >= 1, got 0"),
        (True, "integers >= 1, got True"),
    ],
)
def test_bad_workers_per_device_is_explained(value, message):
    with pytest.raises(ValueError, match=message):
        resolve_workers_per_device(value, ["/a", "/b"])


def test_litserver_checks_workers_per_device_against_its_apis():
    with pytest.raises(ValueError, match="workers_per_device"):
        ls.LitServer([SquareAPI(api_path="/a"), SquareAPI(api_path="/b")], workers_per_device={"/a": 1})


def test_shutdown_api_needs_its_key(monkeypatch):
    monkeypatch.delenv("LIT_SHUTDOWN_API_KEY", raising=False)
    with pytest.raises(ValueError, match="LIT_SHUTDOWN_API_KEY"):
        ls.LitServer(SquareAPI(), enable_shutdown_api=True)
    monkeypatch.setenv("LIT_SHUTDOWN_API_KEY", "k")
    with pytest.raises(ValueError, match="shutdown_path"):
        ls.LitServer(SquareAPI(), enable_shutdown_api=True, shutdown_path="shutdown")
    with pytest.raises(ValueError, match="shutdown_path '/health' is used twice"):
        ls.LitServer(SquareAPI(), enable_shutdown_api=True, shutdown_path="/health")


def test_bearer_token_check():
    assert bearer_token_matches(b"Bearer k3y", b"k3y")
    assert bearer_token_matches(b"bearer k3y", b"k3y")
    assert not bearer_token_matches(b"Bearer k3", b"k3y")
    assert not bearer_token_matches(b"k3y", b"k3y")
    assert not bearer_token_matches(None, b"k3y")


@pytest.mark.parametrize("kwargs", [{"callbacks": "cb"}, {"callbacks": [ls.Callback(), 1]}, {"loggers": [object()]}])
def test_callbacks_and_loggers_must_have_the_right_type(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ls.LitServer(SquareAPI(), **kwargs)
