"""The LLM engine alone, no server: continuous batching (``LLMEngine``) against transformers ``generate``.

Both run in this process on the same seeded model and the same burst of requests (log-normal lengths:
prompts median ~40 tokens, outputs median ~30 up to 160, EOS ignored). ``static`` runs ``generate`` over
batches of 8 in arrival order (left-padded, each batch as long as its longest output). This isolates the
engine's speed from HTTP and process overheads; ``benchmarks/llm.py`` measures the served systems.

    python benchmarks/llm_engine.py                     # 4-layer, 256-wide LLaMA, 48 requests, 1 thread
    python benchmarks/llm_engine.py --requests 96 --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def workload(count: int, vocab: int, seed: int):
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        prompt_len = min(400, max(4, round(rng.lognormvariate(math.log(40), 0.6))))
        output_len = min(160, max(4, round(rng.lognormvariate(math.log(30), 0.7))))
        requests.append(([rng.randrange(3, vocab) for _ in range(prompt_len)], output_len))
    return requests


def run_continuous(model_dir: str, requests, max_total_token_num: int) -> dict:
    from litserve.llm.engine import LLMEngine, SamplingParams

    engine = LLMEngine(model_dir, max_total_token_num=max_total_token_num)
    start = time.perf_counter()
    for uid, (prompt, output_len) in enumerate(requests):
        engine.add_request(uid, prompt, SamplingParams(max_new_tokens=output_len, ignore_eos=True))
    first_token, tokens, steps, peak_kv = {}, 0, 0, 0
    while engine.has_unfinished():
        events = engine.step()
        steps += 1
        now = time.perf_counter() - start
        for event in events:
            first_token.setdefault(event.uid, now)
        tokens += len(events)
        peak_kv = max(peak_kv, engine.stats().kv_tokens_used)
    elapsed = time.perf_counter() - start
    ttft = sorted(first_token.values())
    return {
        "seconds": elapsed,
        "tokens": tokens,
        "steps": steps,
        "ttft_p50": ttft[len(ttft) // 2],
        "peak_kv_tokens": peak_kv,
    }


def run_static(model_dir: str, requests, batch_size: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    start = time.perf_counter()
    tokens, first_done = 0, []
    for offset in range(0, len(requests), batch_size):
        batch = requests[offset : offset + batch_size]
        longest = max(len(prompt) for prompt, _ in batch)
        ids = torch.tensor([[0] * (longest - len(p)) + p for p, _ in batch])
        mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p, _ in batch])
        new_tokens = max(output_len for _, output_len in batch)
        with torch.inference_mode():
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
        tokens += sum(output_len for _, output_len in batch)
        first_done += [time.perf_counter() - start] * len(batch)  # a batch's tokens come when it ends
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "tokens": tokens, "ttft_p50": sorted(first_done)[len(first_done) // 2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=8, help="static batch size")
    parser.add_argument("--max-total-token-num", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from litserve.llm.testing import build_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as directory:
        model_dir = build_tiny_model(directory, hidden_size=args.hidden_size, num_layers=args.num_layers)
        requests = workload(args.requests, vocab=512, seed=args.seed)
        continuous = run_continuous(model_dir, requests, args.max_total_token_num)
        static = run_static(model_dir, requests, args.batch_size)
    print(f"{args.requests} requests, {args.num_layers}x{args.hidden_size} llama, {args.threads} thread(s)")
    print("| system | s | req/s | output tok/s | first token p50 s |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in (("continuous", continuous), (f"static (generate, batch {args.batch_size})", static)):
        seconds = result["seconds"]
        print(
            f"| {name} | {seconds:.2f} | {args.requests / seconds:.2f} | {result['tokens'] / seconds:.0f} "
            f"| {result['ttft_p50']:.2f} |"
        )
    print(f"req/s ratio continuous/static: {static['seconds'] / continuous['seconds']:.2f}x")
    print(f"continuous: {continuous['steps']} steps, peak KV {continuous['peak_kv_tokens']} tokens")


if __name__ == "__main__":
    main()
