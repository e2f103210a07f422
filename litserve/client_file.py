"""The ``client.py`` that ``LitServer.run`` writes so a user can try the server at once."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("litserve")

_TEMPLATE = """\
# Sample client written by litserve. Edit the payload to match your API's decode_request.
import requests

response = requests.post("http://127.0.0.1:{port}{path}", json={{"input": 4.0}}{headers})
print(f"Status: {{response.status_code}}\\nResponse:\\n {{response.text}}")
"""


def write_client_file(port: int, api_path: str, needs_api_key: bool, path: str = "client.py") -> None:
    """Write ``client.py`` in the working directory unless one already exists."""
    if os.path.exists(path):
        return
    headers = ', headers={"X-API-Key": os.environ["LIT_SERVER_API_KEY"]}' if needs_api_key else ""
    text = _TEMPLATE.format(port=port, path=api_path, headers=headers)
    if needs_api_key:
        text = text.replace("import requests\n", "import os\n\nimport requests\n", 1)
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        logger.warning("could not write %s: %s", path, exc)
