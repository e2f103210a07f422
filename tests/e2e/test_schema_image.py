"""``ImageInput`` / ``ImageOutput``: base64 images in JSON, PIL images in the hooks, through a real server."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from litserve.schema.image import ImageInput, ImageOutput


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def two_pixels() -> Image.Image:
    image = Image.new("RGB", (2, 1))
    image.putpixel((0, 0), (255, 0, 0))
    image.putpixel((1, 0), (0, 0, 255))
    return image


def test_an_image_round_trips_through_the_server(serve):
    server = serve("tests.apps_image:FlipImageAPI")
    response = httpx.post(f"{server.url}/predict", json={"image_data": png_base64(two_pixels())}, timeout=30)
    assert response.status_code == 200
    flipped = Image.open(io.BytesIO(base64.b64decode(response.json()["image"])))
    assert flipped.format == "PNG" and flipped.size == (2, 1)
    assert flipped.getpixel((0, 0)) == (0, 0, 255) and flipped.getpixel((1, 0)) == (255, 0, 0)


def test_bad_images_get_a_4xx_that_says_why(serve):
    server = serve("tests.apps_image:FlipImageAPI")
    not_base64 = httpx.post(f"{server.url}/predict", json={"image_data": "not base64!"}, timeout=30)
    assert 400 <= not_base64.status_code < 500
    assert "base64" in not_base64.text
    not_an_image = httpx.post(f"{server.url}/predict", json={"image_data": base64.b64encode(b"hi").decode()})
    assert 400 <= not_an_image.status_code < 500, not_an_image.text
    assert "image" in not_an_image.text.lower()


def test_schema_types_alone():
    image = ImageInput(image_data=png_base64(two_pixels())).get_image()
    assert image.size == (2, 1)
    assert ImageOutput(image=image).model_dump()["image"] == png_base64(image)
    with pytest.raises(ValueError, match="Missing image data"):
        ImageInput().get_image()
    with pytest.raises(Exception, match="must be a PIL image"):
        ImageOutput(image="not an image").model_dump()
