"""Stream a reply word by word, each word sent as soon as it is produced.

Run:    python examples/streaming/server.py
Query:  curl -N -X POST http://127.0.0.1:8000/stream-predict -H "Content-Type: application/json" \
             -d '{"prompt": "streaming makes long answers feel fast"}'
Client: python examples/streaming/client.py
"""

import os
import time

import litserve as ls


class EchoGenerator:
    """Stands in for a language model: yields the prompt back one word at a time."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay

    def generate(self, prompt: str):
        for word in prompt.split():
            time.sleep(self.delay)  # the time a real model spends on each token
            yield word


class StreamingAPI(ls.LitAPI):
    def setup(self, device):
        self.model = EchoGenerator()

    def decode_request(self, request):
        return request["prompt"]

    def predict(self, prompt):
        yield from self.model.generate(prompt)

    def encode_response(self, outputs):
        for index, word in enumerate(outputs):
            yield {"index": index, "token": word}


if __name__ == "__main__":
    server = ls.LitServer(StreamingAPI(), stream=True, accelerator="cpu")
    server.run(port=int(os.environ.get("PORT", 8000)))
