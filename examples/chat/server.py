"""An OpenAI-compatible chat server with token-by-token streaming.

Run:    python examples/chat/server.py
Client: python examples/chat/client.py   (the official openai SDK)

The model is a tiny GPT-2 built from a config with seeded weights and a tokenizer trained at start-up
(see model.py), so it runs offline; its text is nonsense, its serving path is real.
"""

import os

from model import ChatModel

import litserve as ls


class ChatAPI(ls.LitAPI):
    def setup(self, device):
        self.model = ChatModel(device)

    def decode_request(self, request):
        # request is a litserve.specs.openai.ChatCompletionRequest
        return self.model.apply_chat_template([m.model_dump(exclude_none=True) for m in request.messages])

    def predict(self, prompt, context):
        stop = context.get("stop")
        generation = self.model.stream(
            prompt,
            max_new_tokens=context.get("max_completion_tokens") or context.get("max_tokens") or 64,
            temperature=context.get("temperature") or 0.0,
            top_p=context.get("top_p") or 1.0,
            seed=context.get("seed"),
            stop=[stop] if isinstance(stop, str) else stop,
        )
        for piece in generation:
            yield {"content": piece}
        yield {
            "finish_reason": generation.finish_reason,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        }


if __name__ == "__main__":
    server = ls.LitServer(ChatAPI(), spec=ls.OpenAISpec(model_name="tiny-chat"), accelerator="auto")
    server.run(port=int(os.environ.get("PORT", 8000)))
