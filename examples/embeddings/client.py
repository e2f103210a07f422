"""Embed three sentences with the official openai SDK and compare them."""

import math
import os

from openai import OpenAI

client = OpenAI(base_url=f"http://127.0.0.1:{os.environ.get('PORT', 8000)}/v1", api_key="not-needed")
sentences = ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell today."]
vectors = [d.embedding for d in client.embeddings.create(model="all-MiniLM-L6-v2", input=sentences).data]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


for i in range(1, 3):
    print(f"similarity({sentences[0]!r}, {sentences[i]!r}) = {cosine(vectors[0], vectors[i]):.3f}")
