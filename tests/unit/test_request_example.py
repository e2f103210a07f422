"""The generated client's JSON body validates against the request model it was built from."""

from __future__ import annotations

from enum import Enum
from typing import Dict, List, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from litserve.request_example import example_body


class Color(str, Enum):
    red = "red"
    blue = "blue"


class Point(BaseModel):
    x: int = Field(ge=3)
    y: float = Field(gt=0, le=1)


class Everything(BaseModel):
    input: float
    name: str = Field(examples=["ada"])
    mode: Literal["fast", "slow"]
    color: Color
    note: Optional[str] = None
    top_k: int = 5
    point: Point
    points: List[Point] = Field(min_length=2)
    tags: Dict[str, int]
    code: str = Field(min_length=8)


class Empty(BaseModel):
    pass


@pytest.mark.parametrize("model", [Everything, Point, Empty])
def test_example_body_validates(model):
    model.model_validate(example_body(model))


def test_examples_and_defaults_come_first_and_unset_optionals_are_left_out():
    body = example_body(Everything)
    assert body["name"] == "ada" and body["top_k"] == 5 and body["mode"] == "fast" and body["color"] == "red"
    assert "note" not in body
