"""The ``client.py`` that ``LitServer.run`` writes so a user can try the server at once."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("litserve")

_TEMPLATE = """\
# Sample client written by litserve (standard library only). Edit the payload to match your decode_request.
import json
import os
import urllib.error
import urllib.request

headers = {{"Content-Type": "application/json"}}
if os.environ.get("LIT_SERVER_API_KEY"):
    headers["X-API-Key"] = os.environ["LIT_SERVER_API_KEY"]
payload = json.dumps({{"input": 4.0}}).encode()
request = urllib.request.Request("http://127.0.0.1:{port}{path}", data=payload, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        status, body = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read().decode()
print(f"Status: {{status}}\\nResponse:\\n {{body}}")
"""


def write_client_file(port: int, api_path: str, path: str = "client.py") -> None:
    """Write ``client.py`` in the working directory unless one already exists.

    It needs only the standard library, and sends ``LIT_SERVER_API_KEY`` from its environment when set.
    """
    if os.path.exists(path):
        return
    text = _TEMPLATE.format(port=port, path=api_path)
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        logger.warning("could not write %s: %s", path, exc)
