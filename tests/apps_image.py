"""LitAPIs for the ``litserve.schema.image`` tests."""

from __future__ import annotations

import litserve as ls
from litserve.schema.image import ImageInput, ImageOutput


class FlipImageAPI(ls.LitAPI):
    """Mirrors the posted image left to right and answers it as a base64 PNG."""

    def setup(self, device: str) -> None:
        from PIL import Image

        self.model = lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def decode_request(self, request: ImageInput):
        return request.get_image()

    def predict(self, image):
        return self.model(image.convert("RGB"))

    def encode_response(self, image) -> ImageOutput:
        return ImageOutput(image=image)
