"""Static batching baseline for ``benchmarks/llm.py``: transformers ``generate`` in a batched LitAPI.

POST /predict ``{"inputs": str, "max_new_tokens": int}`` -> ``{"generated_text": str, "count_output_tokens": int}``.
A batch (up to ``--max-batch-size`` requests gathered within ``--batch-timeout``) is left-padded and generated
greedily until its longest member is done (``min_new_tokens`` = ``max_new_tokens``: EOS ignored, as the
continuous server's ``ignore_eos``); each request gets its own first ``max_new_tokens`` tokens.
"""

from __future__ import annotations

import argparse
from typing import Any, List, Tuple

import litserve as ls


class StaticGenerateAPI(ls.LitAPI):
    def __init__(self, model_dir: str, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir).to(device).eval()
        self.pad_id = self.model.config.eos_token_id

    def decode_request(self, request: dict) -> Tuple[List[int], int]:
        return self.tokenizer.encode(request["inputs"]), int(request["max_new_tokens"])

    def batch(self, inputs: list) -> list:
        return inputs

    def unbatch(self, output: list) -> list:
        return output

    def predict(self, x: Any) -> Any:
        single = self.max_batch_size == 1
        requests = [x] if single else x
        torch = self.torch
        longest = max(len(ids) for ids, _ in requests)
        max_new = max(n for _, n in requests)
        input_ids = torch.full((len(requests), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), longest), dtype=torch.long)
        for row, (ids, _) in enumerate(requests):
            input_ids[row, longest - len(ids) :] = torch.tensor(ids)
            mask[row, longest - len(ids) :] = 1
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new,
                min_new_tokens=max_new,
                do_sample=False,
                pad_token_id=self.pad_id,
            )
        outputs = [out[row, longest : longest + n].tolist() for row, (_, n) in enumerate(requests)]
        return outputs[0] if single else outputs

    def encode_response(self, tokens: List[int]) -> dict:
        return {"generated_text": self.tokenizer.decode(tokens), "count_output_tokens": len(tokens)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.05)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    api = StaticGenerateAPI(args.model_dir, args.max_batch_size, args.batch_timeout)
    server = ls.LitServer(api, accelerator=args.accelerator, devices=1, timeout=False, max_queue_size=None)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
