"""Pydantic models for the OpenAI Embeddings wire format (``POST /v1/embeddings``).

Note: when a caller of the official ``openai`` SDK does not pass ``encoding_format``, the SDK itself sends
``"encoding_format": "base64"`` and decodes the reply as native-endian float32 (``numpy.frombuffer(..., "float32")`` or
``array.array("f", ...)``), i.e. little-endian on every common platform. Plain float lists are accepted by the SDK too.
The SDK raises ``ValueError("No embedding data received")`` on that default path if ``data`` is empty.
"""

import array
import base64
import sys
from typing import Any, List, Literal, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

__all__ = [
    "Embedding",
    "EmbeddingInput",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsageInfo",
    "EncodingFormat",
    "decode_embedding_base64",
    "encode_embedding_base64",
]

EncodingFormat = Literal["float", "base64"]
EmbeddingInput = Union[str, List[str], List[int], List[List[int]]]


def encode_embedding_base64(vector: Any) -> str:
    """Encode a float vector like OpenAI does: little-endian float32 bytes, then standard base64.

    Accepts any sequence of numbers or a numpy array (converted without importing numpy here).
    """
    if hasattr(vector, "astype") and hasattr(vector, "tobytes"):  # numpy array, without importing numpy
        raw = vector.astype("<f4").reshape(-1).tobytes()
    else:
        values = array.array("f", vector)
        if sys.byteorder != "little":
            values.byteswap()
        raw = values.tobytes()
    return base64.b64encode(raw).decode("ascii")


def decode_embedding_base64(data: str) -> List[float]:
    """Inverse of :func:`encode_embedding_base64` (little-endian float32 regardless of the host)."""
    values = array.array("f", base64.b64decode(data))
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


class EmbeddingRequest(BaseModel):
    """Body of ``POST /v1/embeddings``. Unknown fields are ignored; empty inputs are rejected."""

    model_config = ConfigDict(extra="ignore")

    input: EmbeddingInput
    model: str = ""
    encoding_format: EncodingFormat = "float"
    dimensions: Optional[int] = Field(default=None, gt=0)
    user: Optional[str] = None

    @field_validator("encoding_format", "model", mode="before")
    @classmethod
    def _null_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @field_validator("input")
    @classmethod
    def _reject_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if isinstance(value, str):
            if not value:
                raise ValueError("'input' must not be an empty string")
            return value
        if len(value) == 0:
            raise ValueError("'input' must not be an empty list")
        for position, item in enumerate(value):
            if isinstance(item, (str, list)) and len(item) == 0:
                kind = "string" if isinstance(item, str) else "token list"
                raise ValueError(f"'input[{position}]' must not be an empty {kind}")
        return value

    @property
    def is_tokens(self) -> bool:
        """Whether the input is given as token ids rather than text."""
        return isinstance(self.input, list) and not isinstance(self.input[0], str)

    def ensure_list(self) -> Union[List[str], List[List[int]]]:
        """Return the inputs as a list with one item per embedding to compute.

        A string becomes ``[string]`` and a single token array ``[1, 2, 3]`` becomes ``[[1, 2, 3]]``; lists of strings
        and lists of token arrays are returned as they are.
        """
        if isinstance(self.input, str):
            return [self.input]
        if isinstance(self.input[0], int):
            return [list(self.input)]  # type: ignore[arg-type]
        return list(self.input)  # type: ignore[arg-type]


class Embedding(BaseModel):
    """One embedding vector: a list of floats, or a base64 string when ``encoding_format="base64"``."""

    index: int
    object: Literal["embedding"] = "embedding"
    embedding: Union[List[float], str]

    @field_validator("embedding", mode="before")
    @classmethod
    def _array_to_list(cls, value: Any) -> Any:
        if hasattr(value, "tolist") and not isinstance(value, (list, str)):  # numpy array / torch tensor
            return value.tolist()
        return value


class EmbeddingUsageInfo(BaseModel):
    """Token usage of an embeddings call; ``total_tokens`` defaults to ``prompt_tokens``."""

    prompt_tokens: int = 0
    total_tokens: Optional[int] = None

    @model_validator(mode="after")
    def _fill_total(self) -> "EmbeddingUsageInfo":
        if self.total_tokens is None:
            self.total_tokens = self.prompt_tokens
        return self


#: Alias kept for code written against ``litserve.specs.openai_embedding``; not star-exported, because the chat
#: module's ``UsageInfo`` (with ``completion_tokens``) would be shadowed by it.
UsageInfo = EmbeddingUsageInfo


class EmbeddingResponse(BaseModel):
    """Reply of ``POST /v1/embeddings`` (``object="list"``)."""

    object: Literal["list"] = "list"
    data: List[Embedding]
    model: str
    usage: EmbeddingUsageInfo = Field(default_factory=EmbeddingUsageInfo)

    @classmethod
    def from_vectors(
        cls,
        vectors: Sequence[Any],
        model: str,
        encoding_format: EncodingFormat = "float",
        prompt_tokens: int = 0,
        total_tokens: Optional[int] = None,
    ) -> "EmbeddingResponse":
        """Build a reply from one vector per input, base64-encoding them when asked to."""
        data = []
        for index, vector in enumerate(vectors):
            if encoding_format == "base64":
                data.append(Embedding(index=index, embedding=encode_embedding_base64(vector)))
            else:
                data.append(Embedding(index=index, embedding=vector))
        usage = EmbeddingUsageInfo(prompt_tokens=prompt_tokens, total_tokens=total_tokens)
        return cls(data=data, model=model, usage=usage)
