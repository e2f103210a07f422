"""Print each streamed token as it arrives."""

import json
import os

import requests

url = f"http://127.0.0.1:{os.environ.get('PORT', 8000)}/stream-predict"
with requests.post(url, json={"prompt": "streaming makes long answers feel fast"}, stream=True) as response:
    response.raise_for_status()
    for line in response.iter_lines():
        if line:
            print(json.loads(line)["token"], end=" ", flush=True)
print()
