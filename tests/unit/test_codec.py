"""Payload decoding and response encoding in the worker."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi import HTTPException
from pydantic import BaseModel

from litserve import codec
from litserve.api import stack_inputs


class Item(BaseModel):
    name: str
    price: float


def test_json_payloads_decode_and_bad_ones_raise_400():
    assert codec.decode_payload("application/json", b'{"a": [1, 2]}', None) == {"a": [1, 2]}
    with pytest.raises(codec.RequestError) as info:
        codec.decode_payload("application/json", b"{nope", None)
    assert info.value.status == 400


def test_surrogate_pairs_parse_but_lone_surrogates_are_rejected():
    assert codec.parse_json(b'["\\ud83d\\ude00"]') == ["\U0001f600"]  # a proper surrogate pair
    with pytest.raises(codec.RequestError) as info:
        codec.parse_json(b'{"input": "\\ud800"}')
    assert info.value.status == 400 and "surrogate" in info.value.detail


def test_pydantic_validation_errors_become_422_with_locations():
    with pytest.raises(codec.RequestError) as info:
        codec.decode_payload("application/json", b'{"name": "x", "price": "free"}', Item)
    assert info.value.status == 422
    assert info.value.detail[0]["loc"] == ["body", "price"]
    assert codec.decode_payload("application/json", b'{"name": "x", "price": 2}', Item) == Item(name="x", price=2)


def test_outputs_of_common_types_encode_to_json():
    status, headers, body = codec.encode_output(
        {"t": torch.tensor([1.5, 2.0]), "n": np.arange(2), "m": Item(name="a", price=1)}
    )
    assert status == 200 and headers is None
    assert json.loads(body) == {"t": [1.5, 2.0], "n": [0, 1], "m": {"name": "a", "price": 1.0}}


def test_unserializable_output_raises():
    with pytest.raises(TypeError):
        codec.encode_output({"x": object()})


def test_stream_items_encoding():
    assert codec.encode_stream_item("tok") == b"tok"
    assert codec.encode_stream_item({"a": 1}) == b'{"a":1}\n'
    assert codec.encode_stream_item(Item(name="a", price=1)) == b'{"name":"a","price":1.0}\n'


def test_exception_replies_hide_internals_but_keep_http_exceptions():
    status, _, body = codec.exception_reply(ValueError("db password is hunter2"), "predict")
    assert status == 500 and b"hunter2" not in body and b"ValueError" in body
    status, headers, body = codec.exception_reply(HTTPException(404, "no such model", {"X-Hint": "a"}), "predict")
    assert status == 404 and json.loads(body) == {"detail": "no such model"}
    assert (b"x-hint", b"a") in headers


def test_default_batch_stacks_tensors_and_arrays_only():
    assert stack_inputs([torch.ones(2), torch.zeros(2)]).shape == (2, 2)
    assert stack_inputs([np.ones(3), np.ones(3)]).shape == (2, 3)
    assert stack_inputs([1, 2]) == [1, 2]
