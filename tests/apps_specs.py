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


class CrashingChatAPI(TestAPI):
    """A chat model whose worker dies (``os._exit``) when the last message says "crash"."""

    def predict(self, messages: list):
        if messages[-1].get("content") == "crash":
            import os

            os._exit(9)
        yield from super().predict(messages)


class PidThenStallChatAPI(TestAPI):
    """Streams its worker's pid, then stalls for a minute (the test kills the worker meanwhile)."""

    def predict(self, messages: list):
        import os
        import time

        yield str(os.getpid())
        time.sleep(60)
        yield " done"
