"""Image classifier: base64 images in, top-k labels out, with dynamic batching.

Run:    python examples/image_classifier/server.py
Client: python examples/image_classifier/client.py

The model is a small CNN with seeded weights (see model.py); pass a checkpoint path to load_model for real ones.
"""

import os

import torch
from model import decode_image, load_model, predict, top_k

import litserve as ls


class ImageClassifierAPI(ls.LitAPI):
    def setup(self, device):
        torch.set_num_threads(1)
        self.device = device
        self.model = load_model(path=os.environ.get("CHECKPOINT"), device=device)

    def decode_request(self, request):
        image = request.get("image")
        if not image:
            raise ls.HTTPException(status_code=400, detail="Send the image as base64 in the 'image' field")
        try:
            return decode_image(image)
        except ValueError as exc:
            raise ls.HTTPException(status_code=400, detail=str(exc)) from None

    def predict(self, x):
        # x: (batch, 3, 64, 64), stacked by the default batch()
        return predict(self.model, x.to(self.device))

    def encode_response(self, probabilities):
        return {"predictions": top_k(probabilities, k=5)}


if __name__ == "__main__":
    server = ls.LitServer(ImageClassifierAPI(), accelerator="auto", max_batch_size=16, batch_timeout=0.01)
    server.run(port=int(os.environ.get("PORT", 8000)))
