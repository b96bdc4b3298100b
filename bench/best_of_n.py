"""Best-of-N cost: batched best-of-4 (generate + score) against one sampled reply and a naive loop.

Same prompts (the first --prompts held-out prompts of demo_harmless), same max_new_tokens, same generator
(the embedded SmolLM2-135M-Instruct through its chat template) and reward model (default: the embedded
merge-ready base, a valid 1-logit reward model, built if needed). Two regimes:

- per prompt (one request at a time, as a chat service answers): for each prompt
  - single:  one sampled reply (one `generate` call, nothing to score);
  - batched: `rewardsoup.sampling.generation` — one `generate` call for 4 samples sharing the prompt's prefill, then
    the 4 candidates scored in one batch through `rewardsoup.scoring.rewards`;
  - naive:   four separate `generate` calls and one `score_texts` call per candidate;
- per prompt, equal length: the same two with every reply forced to max_new_tokens, which separates the
  cost per step from the length effect (a best-of-4 call lasts as long as its LONGEST sample);
- prompts batched (--batch prompts per `generate` call, the offline job): single vs batched best-of-4.

Methods are interleaved within each of --repeats rounds after a warm-up, and the FASTEST round of each is
reported: on a shared 2-core machine another process's burst can slow one run several-fold, never speed it.

    .venv/bin/python bench/best_of_n.py [--reward-model DIR] [--prompts 8] [--max-new-tokens 48] [--repeats 3]

Last line: JSON {"bon4_over_single": ... (per prompt), "naive_over_batched": ..., "bon4_over_single_batched": ...,
"bon4_over_single_equal_length": ..., ...}. Goal: bon4_over_single <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from transformers import set_seed  # noqa: E402

from rewardsoup.models.base import build_base  # noqa: E402
from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.data.render import parse_hh_transcript, render_conversation  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.sampling.prompts import item_from_row  # noqa: E402
from rewardsoup.sampling.generation import generate_replies, load_generator  # noqa: E402
from rewardsoup.sampling.job import score_candidates  # noqa: E402
from rewardsoup.scoring.rewards import load_scorer, score_texts  # noqa: E402


def bench_prompts(count: int):
    cfg = compose_cfg("train", ["data=demo_harmless", "logger=none"])
    rows = load_splits(cfg.data).test.select(range(count))
    return [item_from_row({"messages": parse_hh_transcript(r["prompt"])[:-1]}, f"demo_harmless test {i}")
            for i, r in enumerate(rows)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reward-model", default=None)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch", type=int, default=8, help="prompts per generate call in the batched regime")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="auto", help="generator dtype; auto = bfloat16 where native")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default); 1 is steadier "
                   "when other jobs share the cores")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    reward = Path(a.reward_model) if a.reward_model else build_base(compose_cfg("train", ["logger=none"]).model)
    gen = load_generator("embedded:smollm2-135m-instruct", a.dtype)
    a.dtype = str(gen.model.dtype).replace("torch.", "")
    model, tok = load_scorer(reward)
    items = bench_prompts(a.prompts)
    gcfg = {"max_new_tokens": a.max_new_tokens, "temperature": 0.9, "top_p": 0.95, "max_prompt_length": 1024}
    chunks = [items[i:i + a.batch] for i in range(0, len(items), a.batch)]

    def best_of_n(group):
        replies = generate_replies(gen, group, a.n, gcfg)
        score_candidates(model, tok, group, replies, "plain", 256, 32)
        return replies

    def naive_one(item):
        replies = [generate_replies(gen, [item], 1, gcfg)[0][0] for _ in range(a.n)]
        return [score_texts(model, tok, [render_conversation(item.messages + [item.reply(r)])], 256)[0]
                for r in replies]

    def equal_length(fn):  # every reply runs to max_new_tokens: the cost per step, without the length effect
        def run():
            gen.model.generation_config.min_new_tokens = a.max_new_tokens
            try:
                return fn()
            finally:
                gen.model.generation_config.min_new_tokens = None
        return run

    methods = {
        "single": lambda: [generate_replies(gen, [it], 1, gcfg) for it in items],
        "batched": lambda: [best_of_n([it]) for it in items],
        "naive": lambda: [naive_one(it) for it in items],
        "single_eq": equal_length(lambda: [generate_replies(gen, [it], 1, gcfg) for it in items]),
        "batched_eq": equal_length(lambda: [best_of_n([it]) for it in items]),
        "single_b": lambda: [generate_replies(gen, c, 1, gcfg) for c in chunks],
        "batched_b": lambda: [best_of_n(c) for c in chunks],
    }
    generate_replies(gen, items[:2], 2, {**gcfg, "max_new_tokens": 4})  # warm-up
    times: dict[str, list[float]] = {k: [] for k in methods}
    results = {}
    for round_ in range(a.repeats):
        for name, fn in methods.items():
            set_seed(0)
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
            print(f"round {round_ + 1}: {name} {times[name][-1]:.2f}s", flush=True)
    t = {k: min(v) for k, v in times.items()}
    def length(reply: str) -> int:
        return len(gen.tokenizer(reply, add_special_tokens=False)["input_ids"])

    single_len = statistics.mean(length(reps[0]) for call in results["single"] for reps in call)
    longest = statistics.mean(max(length(r) for r in reps) for call in results["batched"] for reps in call)
    words = [len(r.split()) for chunk in results["batched_b"] for reps in chunk for r in reps]
    print(f"\n{len(items)} prompts, n={a.n}, max_new_tokens={a.max_new_tokens}, generator dtype {a.dtype}, "
          f"{torch.get_num_threads()} threads, reward model {reward} (mean reply {sum(words) / len(words):.0f} "
          f"words); fastest of {a.repeats} rounds. Per prompt, reply tokens: single {single_len:.1f} on average, "
          f"longest of the {a.n} candidates {longest:.1f} (a best-of-{a.n} call runs until its longest sample ends)\n")
    print("| regime | method | wall s | s / prompt | vs single |\n|---|---|---|---|---|")
    rows = [("per prompt", "single reply", "single", "single"),
            ("per prompt", f"best-of-{a.n} batched", "batched", "single"),
            ("per prompt", f"best-of-{a.n} naive loop", "naive", "single"),
            ("per prompt, equal length", "single reply", "single_eq", "single_eq"),
            ("per prompt, equal length", f"best-of-{a.n} batched", "batched_eq", "single_eq"),
            (f"{a.batch} prompts / call", "single reply", "single_b", "single_b"),
            (f"{a.batch} prompts / call", f"best-of-{a.n} batched", "batched_b", "single_b")]
    for regime, label, key, ref in rows:
        print(f"| {regime} | {label} | {t[key]:.2f} | {t[key] / len(items):.3f} | {t[key] / t[ref]:.2f}x |")
    print(json.dumps({"bon4_over_single": round(t["batched"] / t["single"], 3),
                      "naive_over_batched": round(t["naive"] / t["batched"], 3),
                      "bon4_over_single_batched": round(t["batched_b"] / t["single_b"], 3),
                      "bon4_over_single_equal_length": round(t["batched_eq"] / t["single_eq"], 3),
                      "reply_tokens_single": round(single_len, 1), "reply_tokens_longest_of_n": round(longest, 1),
                      "seconds": {k: round(v, 3) for k, v in t.items()},
                      "prompts": len(items), "n": a.n, "max_new_tokens": a.max_new_tokens, "batch": a.batch}))


if __name__ == "__main__":
    main()
