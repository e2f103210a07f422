"""Call the LLM server three ways: LightLLM's /generate, its token stream, and the openai SDK."""

import json
import os

import httpx
from openai import OpenAI

base = f"http://127.0.0.1:{os.environ.get('PORT', 8000)}"
body = {"inputs": "What is AI?", "parameters": {"max_new_tokens": 16}}
print(httpx.post(f"{base}/generate", json=body, timeout=60).json())

with httpx.stream("POST", f"{base}/generate_stream", json=body, timeout=60) as response:
    for line in response.iter_lines():
        if line.startswith("data:"):
            print(json.loads(line[len("data:") :])["token"]["text"], end="", flush=True)
print()

client = OpenAI(base_url=f"{base}/v1", api_key="not-needed")
model = client.models.list().data[0].id
chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
print(chat.choices[0].message.content, chat.usage)
