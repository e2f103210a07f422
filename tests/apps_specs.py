"""LitAPIs that carry their spec themselves (``LitAPI(spec=...)``), for servers with several specs."""

from __future__ import annotations

import litserve as ls
from litserve.test_examples.openai_embedding_spec_example import TestEmbedAPI
from litserve.test_examples.openai_spec_example import TestAPI


class ChatAPI(TestAPI):
    def __init__(self):
        super().__init__(spec=ls.OpenAISpec())


class EmbedAPI(TestEmbedAPI):
    def __init__(self):
        super().__init__(spec=ls.OpenAIEmbeddingSpec())
