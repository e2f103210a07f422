"""Model logic for the image-classifier example: a tiny seeded CNN with Pillow-only preprocessing.

No server code lives here. A LitAPI uses it like this::

    setup(device):        self.model = load_model(path=None, device=device)
    decode_request(req):  return decode_image(req["image"])            # (3, 64, 64) float tensor
    batch(inputs):        return torch.stack(inputs)                    # (N, 3, 64, 64)
    predict(x):           return predict(self.model, x)                 # (N, 10) probabilities
    unbatch(output):      return list(output)
    encode_response(p):   return {"predictions": top_k(p, k=3)}

The weights are random but reproducible (``torch.manual_seed(0)``), so the labels are not meaningful;
the loading path (build, save a state_dict, load it back) is the real one.

Self-check: ``python examples/image_classifier/model.py``
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Optional, Sequence, Union

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

LABELS: tuple[str, ...] = ("cat", "dog", "bird", "fish", "horse", "frog", "car", "truck", "airplane", "ship")
IMAGE_SIZE = 64
SEED = 0
# ImageNet channel statistics, the usual choice for RGB inputs.
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
# Refuse absurdly large uploads before Pillow decodes them (bytes of encoded image data).
MAX_IMAGE_BYTES = 20 * 1024 * 1024


class TinyCNN(nn.Module):
    """Three conv blocks (conv-BN-ReLU-maxpool) followed by global average pooling and a linear head."""

    def __init__(self, num_classes: int = len(LABELS)) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = [3, 16, 32, 64]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, 3, H, W) batch to (N, num_classes) logits."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def build_model(seed: int = SEED) -> TinyCNN:
    """Create the classifier with reproducible random weights, in eval mode, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyCNN()
    return model.eval()


def save_model(model: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Write the model's state_dict to a checkpoint file."""
    torch.save(model.state_dict(), path)


def load_model(path: Optional[Union[str, os.PathLike]] = None, device: Union[str, torch.device] = "cpu") -> TinyCNN:
    """Load weights from a state_dict checkpoint if ``path`` is given, else build the seeded model; eval mode."""
    if path is None:
        model = build_model()
    else:
        model = TinyCNN()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def preprocess(image: Image.Image) -> torch.Tensor:
    """Turn a Pillow image into a normalized (3, IMAGE_SIZE, IMAGE_SIZE) float32 tensor."""
    image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    x = pixels.view(IMAGE_SIZE, IMAGE_SIZE, 3).permute(2, 0, 1).float().div_(255.0)
    return (x - MEAN) / STD


def decode_image(b64: str) -> torch.Tensor:
    """Decode a base64 string (optionally a ``data:image/...;base64,`` URL) into a preprocessed image tensor.

    Raises ValueError with a readable message for non-string input, invalid base64 or bytes that are not an image.
    """
    if not isinstance(b64, str):
        raise ValueError(f"image must be a base64-encoded string, got {type(b64).__name__}")
    data = b64.strip()
    if data.startswith("data:"):
        header, sep, data = data.partition(",")
        if not sep or ";base64" not in header:
            raise ValueError("image data URL must be of the form 'data:<mime>;base64,<data>'")
    data = "".join(data.split())  # tolerate line-wrapped base64
    if not data:
        raise ValueError("image is empty")
    if len(data) * 3 // 4 > MAX_IMAGE_BYTES:
        raise ValueError(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"image is not valid base64: {err}") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            return preprocess(image)
    except UnidentifiedImageError:
        raise ValueError("data is not a recognized image format (expected PNG, JPEG, GIF, BMP, WebP, ...)") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"image is too large: {err}") from None
    except (OSError, SyntaxError) as err:  # truncated or corrupt files
        raise ValueError(f"image data is corrupt or truncated: {err}") from None


@torch.inference_mode()
def predict(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run a (N, 3, H, W) batch (or a single (3, H, W) image) and return (N, num_classes) probabilities on CPU."""
    if batch.dim() == 3:
        batch = batch.unsqueeze(0)
    device = next(model.parameters()).device
    logits = model(batch.to(device))
    return torch.softmax(logits.float(), dim=-1).cpu()


def top_k(probs: Union[torch.Tensor, Sequence[float]], k: int = 3) -> list[dict[str, Union[str, float]]]:
    """Return the ``k`` most likely labels for one image as ``[{"label": str, "probability": float}, ...]``."""
    p = torch.as_tensor(probs, dtype=torch.float32).flatten()
    if p.numel() != len(LABELS):
        raise ValueError(f"expected {len(LABELS)} probabilities, got {p.numel()}")
    k = max(0, min(int(k), len(LABELS)))
    values, indices = torch.topk(p, k)
    return [{"label": LABELS[i], "probability": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist())]


def make_sample_image_b64(
    size: tuple[int, int] = (96, 80), color: tuple[int, int, int] = (200, 120, 40), fmt: str = "PNG"
) -> str:
    """Build a small test image in memory (a colored square on a gradient) and return it base64-encoded."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    square = Image.new("RGB", (max(1, width // 2), max(1, height // 2)), color)
    image.paste(square, (width // 4, height // 4))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _self_check() -> None:
    import tempfile
    import time

    start = time.perf_counter()
    model = load_model()
    print(
        f"built seeded model in {time.perf_counter() - start:.3f}s "
        f"({sum(p.numel() for p in model.parameters())} parameters)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tiny_cnn.pt")
        save_model(model, ckpt)
        start = time.perf_counter()
        reloaded = load_model(ckpt)
        print(f"loaded checkpoint in {time.perf_counter() - start:.3f}s")

    x = decode_image(make_sample_image_b64())
    assert x.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == torch.float32
    assert torch.equal(decode_image("data:image/png;base64," + make_sample_image_b64()), x)
    probs = predict(model, x)
    assert torch.allclose(probs, predict(reloaded, x)), "checkpoint round trip changed the outputs"
    assert torch.allclose(probs, predict(build_model(), x)), "seeded build is not reproducible"
    assert abs(float(probs.sum()) - 1.0) < 1e-5
    print("top-3:", top_k(probs[0], 3))

    jpeg = decode_image(make_sample_image_b64(size=(300, 200), fmt="JPEG"))
    batch = torch.stack([x, jpeg] * 4)
    start = time.perf_counter()
    for _ in range(10):
        out = predict(model, batch)
    print(f"batch of {len(batch)}: {(time.perf_counter() - start) / 10 * 1000:.1f} ms/batch, shape {tuple(out.shape)}")

    bad_inputs = {
        "not base64": "%%% not base64 %%%",
        "base64 of text": base64.b64encode(b"hello, world").decode(),
        "empty": "",
        "truncated png": make_sample_image_b64()[:200],
        "not a string": 123,
    }
    for name, bad in bad_inputs.items():
        try:
            decode_image(bad)  # type: ignore[arg-type]
        except ValueError as err:
            print(f"  {name!r} -> ValueError: {err}")
        else:
            raise AssertionError(f"{name} was accepted")
    print("image_classifier self-check OK")


if __name__ == "__main__":
    _self_check()
