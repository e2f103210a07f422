"""Send a generated test image and print the top predictions."""

import os

import requests
from model import make_sample_image_b64

url = f"http://127.0.0.1:{os.environ.get('PORT', 8000)}/predict"
response = requests.post(url, json={"image": make_sample_image_b64()}, timeout=30)
if response.status_code == 200:
    print("Top 5 predictions:")
    for prediction in response.json()["predictions"]:
        print(f"  {prediction['label']}: {prediction['probability']:.2%}")
else:
    print(f"Error {response.status_code}: {response.text}")
