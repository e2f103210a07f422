"""Stream a chat completion with the official openai SDK."""

import os

from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{os.environ.get('PORT', 8000)}/v1", api_key="not-needed")
stream = client.chat.completions.create(
    model="tiny-chat",
    messages=[{"role": "user", "content": "What is the capital of Australia?"}],
    max_tokens=20,
    stream=True,
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content is not None:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
