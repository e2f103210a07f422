"""LitServe's ``litserve.python_client``: the smallest client of a ``/predict`` server.

``server.run()`` writes a ``client.py`` fitted to the API instead (see ``litserve.client_file``).
"""

#: ``client_template.format(PORT=8000)`` is a script that posts ``{"input": 4.0}`` and prints the reply.
client_template = '''"""Posts one request to the litserve server on port {PORT} and prints the reply."""

import requests

reply = requests.post("http://127.0.0.1:{PORT}/predict", json={{"input": 4.0}})
print(f"Status: {{reply.status_code}}\\nResponse:\\n {{reply.text}}")
'''
