"""Best-of-N with a reward model: sample N replies per prompt, score each, keep the best.

`python sample.py reward_model=PATH prompts=FILE n=4` (or `prompt="..."`, or `candidates=FILE` to rerank
given replies without generating). Per prompt:

1. generation (`generate_replies`): the generator (any causal LM) sees the conversation through its chat
   template (`add_generation_prompt=True`); one without a template gets the plain hh format and a single
   warning. Prompts are batched (`generation.batch_prompts`) with LEFT padding, `do_sample=True`,
   `num_return_sequences=n`, seeded with `transformers.set_seed`;
2. scoring (`score_candidates`): each candidate is rendered for the reward model exactly like training data,
   `render_conversation(messages + [reply])` (Chai "Name: text" lines when messages carry names), and scored
   through `rewardsoup.scoring.score_texts` (left truncation to `max_length`);
3. output: a jsonl (atomic) with, per prompt, every candidate and its reward and the argmax as `chosen`;
   `mode=preferences` writes best/worst as canonical pairwise rows (`prompt`, `chosen`, `rejected`,
   `margin`) that `train.py data=local_pairs data.source=FILE objective=pairwise` reads.

`group_pairs_by_prompt` / `best_of_n_accuracy`: a reward model as a best-of-N picker on pairwise data
(evaluate.py's optional `best_of_n` block).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rewardsoup import stats
from rewardsoup.atomic import atomic_write_text
from rewardsoup.data.render import render_prompt_and_reply
from rewardsoup.errors import ConfigError, ModelError
from rewardsoup.prompts import PromptItem, cli_prompts, read_candidates, read_prompts
from rewardsoup.scoring import load_scorer, score_texts

log = logging.getLogger("rewardsoup.sampling")
MODES = ("best", "preferences")
_STOPS = ("\n\nHuman:", "\n\nAssistant:", "\n\nSystem:")  # plain-format turn markers end a reply


@dataclass
class Generator:
    """A loaded causal LM; `chat` is False when its tokenizer has no chat template (plain hh format)."""

    model: Any
    tokenizer: Any
    chat: bool


_GENERATORS: dict[tuple, Generator] = {}


def _positive(value: Any, name: str, kind: type = int, low: float = 1) -> Any:
    """`value` as `kind` when it is a number >= `low` (an integer for int); ConfigError naming `name` otherwise."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (kind is int and value != int(value)) or value < low:
        raise ConfigError(f"{name}={value!r}: expected {'an integer' if kind is int else 'a number'} >= {low}")
    return kind(value)


def check_settings(cfg: Mapping[str, Any]) -> tuple[int, str]:
    """(n, mode) after checking every sampling setting; ConfigError names the bad key."""
    n = _positive(cfg.get("n"), "n")
    mode = str(cfg.get("mode", "best"))
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: expected one of {list(MODES)}")
    if mode == "preferences" and n < 2 and not cfg.get("candidates"):
        raise ConfigError(f"mode=preferences needs n >= 2 (a best and a worst candidate), got n={n}")
    gen = cfg.get("generation") or {}
    _positive(gen.get("max_new_tokens"), "generation.max_new_tokens")
    _positive(gen.get("batch_prompts"), "generation.batch_prompts")
    _positive(gen.get("max_prompt_length"), "generation.max_prompt_length")
    if _positive(gen.get("temperature"), "generation.temperature", float, 0) == 0:
        raise ConfigError("generation.temperature=0: expected > 0 (sampling; use n=1 for one reply)")
    if not 0 < _positive(gen.get("top_p"), "generation.top_p", float, 0) <= 1:
        raise ConfigError(f"generation.top_p={gen.get('top_p')}: expected a number in (0, 1]")
    _positive(cfg.get("max_length"), "max_length")
    _positive(cfg.get("score_batch_size"), "score_batch_size")
    return n, mode


def generator_dtype(name: str, device: str) -> str:
    """"auto": bfloat16 where it is native (CUDA with bf16, CPUs with AVX512-BF16 or AMX), else float32.

    Measured on a 2-core AVX512-BF16 CPU: a bf16 linear over 4 rows costs 1.2x one row, fp32 2.5x, so bf16
    makes 4 samples nearly as cheap as 1 (bench/best_of_n.py).
    """
    import torch

    if str(name) != "auto":
        return str(name)
    if str(device).startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    native = [getattr(torch.cpu, f, lambda: False) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return "bfloat16" if str(device) == "cpu" and any(f() for f in native) else "float32"


def load_generator(spec: str, dtype: str = "auto", device: str = "cpu") -> Generator:
    """A causal LM and its left-padding tokenizer, kept per process; ModelError for a reward model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardsoup.models import from_pretrained, resolve_model

    path = resolve_model(str(spec))
    dtype = generator_dtype(dtype, device)
    key = (path, dtype, device)
    if key in _GENERATORS:
        return _GENERATORS[key]
    config = Path(path) / "config.json"
    archs = (json.loads(config.read_text()).get("architectures") or []) if config.exists() else []
    if archs and all(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelError(f"generator '{spec}' is {archs}, a classifier; expected a causal LM (e.g. "
                         f"generator=embedded:smollm2-135m-instruct)")
    if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise ConfigError(f"generation.dtype={dtype!r}: expected a torch dtype name (float32, bfloat16, float16)")
    model = from_pretrained(AutoModelForCausalLM, path, dtype=getattr(torch, str(dtype))).to(device).eval()
    tokenizer = from_pretrained(AutoTokenizer, path)
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chat = bool(getattr(tokenizer, "chat_template", None))
    if not chat:
        log.warning("generator '%s' has no chat template; prompting it in the plain format "
                    "('\\n\\nHuman: ...\\n\\nAssistant:')", spec)
    _GENERATORS[key] = Generator(model, tokenizer, chat)
    return _GENERATORS[key]


def generator_prompt(gen: Generator, item: PromptItem) -> str:
    """The text the generator continues: its chat template, or the plain format ending in the reply marker."""
    if gen.chat:
        return gen.tokenizer.apply_chat_template(item.messages, tokenize=False, add_generation_prompt=True)
    return render_prompt_and_reply(item.messages, item.reply(""))[0]


def clean_reply(text: str, item: PromptItem) -> str:
    """Cut a sampled reply at the next turn marker (plain format) and strip surrounding whitespace."""
    names = {m["name"] for m in item.messages if m.get("name")}
    for stop in _STOPS + tuple(f"\n\n{name}:" for name in sorted(names)):
        text = text.split(stop, 1)[0]
    return text.strip()


def shared_prefill(model, enc: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Run the prompts' tokens (all but the last) once and repeat their KV cache `n` times.

    Returns `generate` inputs for the prompts repeated n times (what num_return_sequences=n builds) plus the
    cache, so the n samples of a prompt share one prefill; the samples are the same as without it.
    """
    from transformers import DynamicCache

    ids, mask = enc["input_ids"], enc["attention_mask"]
    cache = DynamicCache(config=model.config)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: count real tokens only, as generate does
    model.base_model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                     cache=cache, use_cache=True)
    cache.batch_repeat_interleave(n)
    return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0), "cache": cache}


def generate_replies(gen: Generator, items: Sequence[PromptItem], n: int,
                     gen_cfg: Mapping[str, Any]) -> list[list[str]]:
    """`n` sampled replies per prompt, all prompts in one left-padded `generate` call."""
    import torch

    tok = gen.tokenizer
    enc = tok([generator_prompt(gen, item) for item in items], return_tensors="pt", padding=True,
              truncation=True, max_length=int(gen_cfg["max_prompt_length"]), add_special_tokens=not gen.chat)
    enc = {k: v.to(gen.model.device) for k, v in enc.items()}
    width = enc["input_ids"].shape[1]
    with torch.no_grad():  # not inference_mode: measured 13x slower generate on CPU (torch 2.13, tf 5.24)
        share = n > 1 and width > 1 and gen_cfg.get("share_prompt", True)
        inputs = shared_prefill(gen.model, enc, n) if share else {**enc, "num_return_sequences": n}
        out = gen.model.generate(
            **inputs, do_sample=True, max_new_tokens=int(gen_cfg["max_new_tokens"]),
            temperature=float(gen_cfg["temperature"]), top_p=float(gen_cfg["top_p"]), pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
    return [[clean_reply(t, item) for t in texts[i * n:(i + 1) * n]] for i, item in enumerate(items)]


def score_candidates(model, tokenizer, items: Sequence[PromptItem], replies: Sequence[Sequence[str]],
                     style: str, max_length: int, batch_size: int) -> list[tuple[list[tuple[str, str]], np.ndarray]]:
    """Per prompt: the (prompt_text, reply_text) split of each rendered candidate and its reward.

    `prompt_text + reply_text == render_conversation(messages + [reply])`, the text that is scored.
    """
    split = [[render_prompt_and_reply(item.messages, item.reply(r), style, tokenizer) for r in reps]
             for item, reps in zip(items, replies)]
    rewards = score_texts(model, tokenizer, [p + r for parts in split for p, r in parts], max_length, batch_size)
    ends = np.cumsum([len(parts) for parts in split])
    return [(parts, rewards[end - len(parts):end]) for parts, end in zip(split, ends)]


def best_row(item: PromptItem, replies: Sequence[str], parts, rewards: np.ndarray) -> dict[str, Any]:
    """One output line of mode=best: prompt, every candidate with its reward, the argmax as `chosen`."""
    k = int(np.argmax(rewards))
    return {"where": item.where, "messages": item.messages, "prompt": parts[0][0],
            "candidates": [{"text": r, "reward": float(s)} for r, s in zip(replies, rewards)],
            "chosen": {"index": k, "text": replies[k], "reward": float(rewards[k])}}


def preference_row(parts, rewards: np.ndarray) -> tuple[dict[str, Any] | None, str | None]:
    """(canonical pairwise row of best vs worst, None) or (None, why it was skipped)."""
    best, worst = int(np.argmax(rewards)), int(np.argmin(rewards))
    (p_best, chosen), (p_worst, rejected) = parts[best], parts[worst]
    if p_best + chosen == p_worst + rejected:
        return None, "identical_candidates"
    if rewards[best] <= rewards[worst]:
        return None, "tied_rewards"
    if p_best != p_worst:  # chat-template renderings that differ before the reply: split at the shared prefix
        full_c, full_r = p_best + chosen, p_worst + rejected
        p_best = os.path.commonprefix([full_c, full_r])
        chosen, rejected = full_c[len(p_best):], full_r[len(p_best):]
        if not chosen or not rejected:
            return None, "reply_is_prefix"
    return {"prompt": p_best, "chosen": chosen, "rejected": rejected,
            "margin": float(rewards[best] - rewards[worst])}, None


def _items(cfg: Mapping[str, Any]) -> tuple[list[PromptItem], str, bool]:
    """(prompts, a short name of their source, rerank?) from `candidates`, `prompts` or `prompt`."""
    given = [k for k in ("candidates", "prompts", "prompt") if cfg.get(k) not in (None, "")]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of candidates=FILE, prompts=FILE or prompt='...' (got {given or 'none'})")
    key, value = given[0], cfg[given[0]]
    if key == "prompt":
        return cli_prompts(value if isinstance(value, str) else list(value)), "cli", False
    reader = read_candidates if key == "candidates" else read_prompts
    return reader(value), Path(str(value)).name.split(".")[0], key == "candidates"


def _short(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(write: Callable[[str], None], index: int, total: int, row: Mapping[str, Any]) -> None:
    last = row["messages"][-1]
    write(f"== prompt {index + 1}/{total} ({row['where']}) {last['role']}: {_short(last['content'])}")
    for k, cand in enumerate(row["candidates"]):
        mark = "*" if k == row["chosen"]["index"] else " "
        write(f"  {mark} reward {cand['reward']:+8.4f}  {_short(cand['text'], 120)}")
    write(f"  chosen: {row['chosen']['text']}")


def sample_job(cfg) -> dict[str, Any]:
    """sample.py's work: best-of-N (or rerank) over every prompt, written as jsonl; returns a summary."""
    import torch
    from tqdm import tqdm
    from transformers import set_seed

    from rewardsoup.tracking import start_run

    n, mode = check_settings(cfg)
    items, source, rerank = _items(cfg)
    gen_cfg, device = cfg.generation, str(cfg.get("device") or "auto")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model, tokenizer = load_scorer(Path(str(cfg.reward_model)).expanduser())
    model.to(device)
    gen = None if rerank else load_generator(str(cfg.generator), str(gen_cfg.get("dtype", "auto")), device)
    name = f"{source}-{mode}-{'rerank' if rerank else f'n{n}-seed{cfg.seed}'}.jsonl"
    output = Path(str(cfg.output)) if cfg.get("output") else Path(cfg.paths.root) / "samples" / name
    set_seed(int(cfg.seed))
    rows, lines, table, skipped = [], [], [], Counter()
    batch = int(gen_cfg.batch_prompts)
    with start_run(cfg, job_type="sample", name=f"sample-{source}-{mode}") as tracker:
        bar = tqdm(total=len(items), desc="best-of-N" if not rerank else "rerank", unit="prompt")
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            replies = [it.candidates for it in chunk] if rerank else generate_replies(gen, chunk, n, gen_cfg)
            scored = score_candidates(model, tokenizer, chunk, replies, str(cfg.render_style),
                                      int(cfg.max_length), int(cfg.score_batch_size))
            for i, (item, reps, (parts, rewards)) in enumerate(zip(chunk, replies, scored)):
                row = best_row(item, reps, parts, rewards)
                rows.append(row)
                table += [[start + i, row["prompt"], c["text"], c["reward"], k == row["chosen"]["index"]]
                          for k, c in enumerate(row["candidates"])]
                if cfg.get("print_candidates", True):
                    _show(tqdm.write, start + i, len(items), row)
                if mode == "preferences":
                    pair, why = preference_row(parts, rewards)
                    if pair is None:
                        skipped[why] += 1
                    else:
                        lines.append(pair)
            bar.update(len(chunk))
        bar.close()
        lines = rows if mode == "best" else lines  # preferences: the pairs gathered above
        atomic_write_text(output, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        chosen = np.array([r["chosen"]["reward"] for r in rows])
        mean = np.array([np.mean([c["reward"] for c in r["candidates"]]) for r in rows])
        summary = {"prompts": len(rows), "lines": len(lines), "mean_chosen_reward": float(chosen.mean()),
                   "mean_reward": float(mean.mean()), "mean_gain": float((chosen - mean).mean()),
                   **{f"skipped_{k}": v for k, v in skipped.items()}}
        tracker.table(f"sample/{mode}", ["prompt_index", "prompt", "candidate", "reward", "chosen"], table)
        tracker.summary({f"sample/{k}": v for k, v in summary.items()})
    print(f"[rewardsoup] {mode}: {len(lines)} lines for {len(rows)} prompts -> {output}"
          + (f" (skipped {dict(skipped)})" if skipped else ""), flush=True)
    return {"output": str(output), **summary}


# ---- best-of-N accuracy of a reward model on pairwise data -------------------------------------------


@dataclass
class BonGroup:
    """One prompt with its preferred reply and >= 1 distinct rejected replies (n = 1 + len(rejected))."""

    prompt: str
    chosen: str
    rejected: list[str]

    @property
    def n(self) -> int:
        return 1 + len(self.rejected)


def group_pairs_by_prompt(ds, min_candidates: int = 2) -> tuple[list[BonGroup], dict[str, int]]:
    """Group canonical pairwise rows sharing a (non-empty) prompt into best-of-n groups.

    A group keeps its distinct rejected replies (any equal to the chosen one dropped). Skipped and counted
    in the report: rows without a prompt (`no_prompt`), groups whose pairs disagree on the chosen reply
    (`inconsistent_chosen`), groups with fewer than `min_candidates` candidates (`too_few`).
    """
    by_prompt: dict[str, list[tuple[str, str]]] = {}
    report = {"pairs": len(ds), "no_prompt": 0, "inconsistent_chosen": 0, "too_few": 0, "groups": 0}
    for row in ds:
        if not row["prompt"]:
            report["no_prompt"] += 1
            continue
        by_prompt.setdefault(row["prompt"], []).append((row["chosen"], row["rejected"]))
    groups = []
    for prompt, pairs in by_prompt.items():
        if len({c for c, _ in pairs}) > 1:
            report["inconsistent_chosen"] += 1
            continue
        chosen = pairs[0][0]
        rejected = list(dict.fromkeys(r for _, r in pairs if r != chosen))
        if not rejected or 1 + len(rejected) < min_candidates:
            report["too_few"] += 1
            continue
        groups.append(BonGroup(prompt, chosen, rejected))
    report["groups"] = len(groups)
    return groups, report


def best_of_n_accuracy(groups: Sequence[BonGroup], scorer: Callable[[list[str]], Sequence[float]],
                       bootstrap: int = 1000, seed: int = 0) -> dict[str, float]:
    """Fraction of groups where `scorer` (texts -> rewards) ranks the preferred reply strictly first.

    Texts are `prompt + reply`, scored in one call. Returns `bon` with its seeded bootstrap 95% interval
    (`bon_lo`, `bon_hi`, groups resampled), `bon_chance` (mean of 1/n: a random pick's expected score),
    `bon_groups` and `bon_mean_candidates`.
    """
    if not groups:
        return {**dict.fromkeys(("bon", "bon_lo", "bon_hi", "bon_chance", "bon_mean_candidates"), float("nan")),
                "bon_groups": 0}
    texts = [g.prompt + reply for g in groups for reply in [g.chosen, *g.rejected]]
    rewards = np.asarray(scorer(texts), dtype=np.float64)
    if rewards.shape != (len(texts),):
        raise ValueError(f"scorer returned {rewards.shape} rewards for {len(texts)} texts")
    sizes = np.array([g.n for g in groups])
    hits = np.array([float(r[0] > r[1:].max()) for r in np.split(rewards, np.cumsum(sizes)[:-1])])
    lo, hi = stats.interval(hits, bootstrap, seed)
    return {"bon": float(hits.mean()), "bon_lo": lo, "bon_hi": hi, "bon_chance": float(np.mean(1.0 / sizes)),
            "bon_groups": len(groups), "bon_mean_candidates": float(sizes.mean())}


_BON_GROUPS: dict[str, tuple] = {}


def dataset_best_of_n(model, tokenizer_dir: str | Path, data_cfg, split: str, max_length: int,
                      batch_size: int = 32, min_candidates: int = 2, bootstrap: int = 1000) -> dict[str, float]:
    """best_of_n_accuracy of `model` on one pairwise split (groups built once per process and dataset)."""
    from transformers import AutoTokenizer

    from rewardsoup.data import load_splits
    from rewardsoup.data.loading import as_dict

    key = json.dumps([as_dict(data_cfg), split, min_candidates, str(tokenizer_dir)], sort_keys=True, default=str)
    if key not in _BON_GROUPS:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        groups, report = group_pairs_by_prompt(getattr(load_splits(data_cfg, tokenizer), split), min_candidates)
        _BON_GROUPS[key] = (tokenizer, groups)
        print(f"[rewardsoup] best-of-n groups of {as_dict(data_cfg).get('name')} ({split}): {report}", flush=True)
    tokenizer, groups = _BON_GROUPS[key]
    return best_of_n_accuracy(groups, lambda texts: score_texts(model, tokenizer, texts, max_length, batch_size),
                              bootstrap)
