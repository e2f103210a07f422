"""Every example starts as a user would start it, answers correctly and logs no warning."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import REPO_ROOT, warnings_in

EXAMPLES = REPO_ROOT / "examples"


def test_hello_world_example_and_its_generated_client(serve_script, tmp_path):
    server = serve_script(EXAMPLES / "hello_world" / "server.py")
    assert httpx.post(f"{server.url}/predict", json={"input": 4.0}).json() == {"output": 16.0}
    result = subprocess.run(
        [sys.executable, "client.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True
    )
    assert "Status: 200" in result.stdout
    assert warnings_in(server.output()) == [], server.output()


def test_pydantic_example_validates(serve_script):
    server = serve_script(EXAMPLES / "pydantic" / "server.py")
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9.0}
    assert httpx.post(f"{server.url}/predict", json={"input": "three"}).status_code == 422
    assert warnings_in(server.output()) == [], server.output()


def test_torch_workers_example_uses_both_workers(serve_script):
    server = serve_script(EXAMPLES / "torch_workers" / "server.py")
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda i: client.post(f"{server.url}/predict", json={"input": i}).json(), range(64)))
    assert [b["output"] for b in bodies] == [2.0 * i + 1 for i in range(64)]
    assert len({b["worker_pid"] for b in bodies}) == 2
    assert warnings_in(server.output()) == [], server.output()


def test_streaming_example_and_client(serve_script):
    server = serve_script(EXAMPLES / "streaming" / "server.py")
    with httpx.stream("POST", f"{server.url}/stream-predict", json={"prompt": "a b c"}) as response:
        items = [json.loads(line) for line in response.iter_lines() if line]
    assert items == [{"index": 0, "token": "a"}, {"index": 1, "token": "b"}, {"index": 2, "token": "c"}]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "streaming" / "client.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PORT": str(server.port), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "streaming makes long answers feel fast"
    assert warnings_in(server.output()) == [], server.output()


def test_image_classifier_example_batches_and_labels(serve_script):
    import base64
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_model", EXAMPLES / "image_classifier" / "model.py")
    image_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(image_model)

    server = serve_script(EXAMPLES / "image_classifier" / "server.py")
    images = [image_model.make_sample_image_b64(color=(i * 20, 100, 200 - i * 20)) for i in range(16)]
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda image: client.post(f"{server.url}/predict", json={"image": image}), images))
    assert all(r.status_code == 200 for r in responses)
    for response in responses:
        predictions = response.json()["predictions"]
        assert len(predictions) == 5
        assert {p["label"] for p in predictions} <= set(image_model.LABELS)
        probabilities = [p["probability"] for p in predictions]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001

    garbage = httpx.post(f"{server.url}/predict", json={"image": base64.b64encode(b"not an image").decode()})
    assert garbage.status_code == 400
    missing = httpx.post(f"{server.url}/predict", json={})
    assert missing.status_code == 400 and "image" in missing.json()["detail"]
    assert warnings_in(server.output()) == [], server.output()


def test_chat_example_streams_tokens_to_the_openai_sdk(serve_script):
    import openai

    server = serve_script(EXAMPLES / "chat" / "server.py")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)
    messages = [{"role": "user", "content": "What is the capital of Australia?"}]
    chunks = list(
        client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0, stream=True)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 8, "one event per generated token"
    assert chunks[-1].choices[0].finish_reason == "length"

    completion = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0)
    assert completion.choices[0].message.content == "".join(pieces), "greedy decoding is deterministic"
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens > 0
    assert [m.id for m in client.models.list().data] == ["tiny-chat"]
    assert warnings_in(server.output()) == [], server.output()


def test_embeddings_example_captures_meaning(serve_script):
    import math

    import openai

    server = serve_script(EXAMPLES / "embeddings" / "server.py")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)
    sentences = ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell today."]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=sentences)
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 384 for v in vectors)

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert result.usage.prompt_tokens > len(sentences)

    with ThreadPoolExecutor(8) as pool:
        singles = list(
            pool.map(lambda s: client.embeddings.create(model="m", input=s, encoding_format="float"), sentences * 3)
        )
    for sentence, single in zip(sentences * 3, singles):
        expected = vectors[sentences.index(sentence)]
        assert cosine(single.data[0].embedding, expected) > 0.9999, "batched requests get their own vectors"
    assert warnings_in(server.output()) == [], server.output()
