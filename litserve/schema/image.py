"""``ImageInput`` and ``ImageOutput``: images as base64 strings in JSON, PIL images in the hooks.

Pillow is needed only when an image is decoded or encoded (``pip install pillow``).

Example::

    class Flip(ls.LitAPI):
        def decode_request(self, request: ImageInput):
            return request.get_image()

        def predict(self, image):
            return image.transpose(Image.FLIP_LEFT_RIGHT)

        def encode_response(self, image) -> ImageOutput:
            return ImageOutput(image=image)  # {"image": "<base64 PNG>"}
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel, field_serializer, model_validator

from litserve.codec import RequestError

if TYPE_CHECKING:
    from PIL import Image

_PILLOW_MISSING = "Pillow is required for litserve.schema.image: install it with `pip install pillow`"


class InvalidImageError(RequestError, ValueError):
    """The request's image data is missing or not an image: the client gets 400 with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class ImageInput(BaseModel):
    """A request carrying a base64-encoded image in ``image_data`` (other base64 fields are allowed too)."""

    image_data: Optional[str] = None

    @model_validator(mode="after")
    def _check_base64(self) -> ImageInput:
        for name, value in self.model_dump().items():
            if value:
                try:
                    base64.b64decode(value)
                except (binascii.Error, ValueError, TypeError):
                    raise ValueError(f"{name} is not a valid base64 string") from None
        return self

    def get_image(self, key: Optional[str] = None) -> Image.Image:
        """Decode the field ``key`` (default ``image_data``) into a PIL image.

        Raises ``InvalidImageError`` (a ``ValueError``, answered with 400) when the field is empty or not an image.
        """
        key = key or "image_data"
        data = self.model_dump().get(key)
        if not data:
            raise InvalidImageError(f"Missing image data for key '{key}'")
        pil_image = _pil_image_module()
        try:
            return pil_image.open(io.BytesIO(base64.b64decode(data)))
        except pil_image.UnidentifiedImageError:
            raise InvalidImageError(f"The data in '{key}' is not an image Pillow can read") from None


class ImageOutput(BaseModel):
    """A response carrying a PIL image, serialized as a base64 PNG in ``image``."""

    image: Any

    @field_serializer("image")
    def _image_as_base64_png(self, image: Any) -> str:
        pil_image = _pil_image_module()
        if not isinstance(image, pil_image.Image):
            raise TypeError(f"ImageOutput.image must be a PIL image, got {type(image).__name__}")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pil_image_module() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(_PILLOW_MISSING) from None
    return Image
