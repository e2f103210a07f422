"""Hello world: serve x**2 at POST /predict.

Run:    python examples/hello_world/server.py
Query:  curl -X POST http://127.0.0.1:8000/predict -H "Content-Type: application/json" -d '{"input": 4.0}'
"""

import os

import litserve as ls


class SimpleLitAPI(ls.LitAPI):
    def setup(self, device):
        self.model = lambda x: x**2

    def decode_request(self, request):
        return request["input"]

    def predict(self, x):
        return self.model(x)

    def encode_response(self, output):
        return {"output": output}


if __name__ == "__main__":
    server = ls.LitServer(SimpleLitAPI(), accelerator="auto")
    server.run(port=int(os.environ.get("PORT", 8000)))
