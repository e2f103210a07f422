"""Write a small seeded LLaMA-style model directory (config, random weights, byte-level tokenizer) offline.

    python examples/llm/build_model.py /tmp/tiny-llama            # 4 layers, 256 wide
    python examples/llm/build_model.py /tmp/tiny-gpt2 --arch gpt2

Its text is nonsense (random weights); loading and serving it takes the same path as a real model's.
"""

import argparse

from litserve.llm.testing import build_tiny_model

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--arch", default="llama", choices=["llama", "mistral", "qwen2", "gpt2"])
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=4)
    args = parser.parse_args()
    print(build_tiny_model(args.directory, arch=args.arch, hidden_size=args.hidden_size, num_layers=args.num_layers))
