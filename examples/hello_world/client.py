# Sample client written by litserve (standard library only). Edit the payload to match your decode_request.
import json
import os
import urllib.error
import urllib.request

headers = {"Content-Type": "application/json"}
if os.environ.get("LIT_SERVER_API_KEY"):
    headers["X-API-Key"] = os.environ["LIT_SERVER_API_KEY"]
payload = json.dumps({"input": 4.0}).encode()
request = urllib.request.Request("http://127.0.0.1:8000/predict", data=payload, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        status, body = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read().decode()
print(f"Status: {status}\nResponse:\n {body}")
