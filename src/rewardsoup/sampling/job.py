"""Best-of-N with a reward model: sample N replies per prompt, score each, keep the best.

`python sample.py reward_model=PATH prompts=FILE n=4` (or `prompt="..."`, or `candidates=FILE` to rerank
given replies without generating). Per prompt:

1. generation (`generate_replies`): the generator (any causal LM) sees the conversation through its chat
   template (`add_generation_prompt=True`); one without a template gets the plain hh format and a single
   warning. Prompts are batched (`generation.batch_prompts`) with LEFT padding, `do_sample=True`,
   `num_return_sequences=n`, seeded with `transformers.set_seed`;
2. scoring (`score_candidates`): each candidate is rendered for the reward model exactly like training data,
   `render_conversation(messages + [reply])` (Chai "Name: text" lines when messages carry names), and scored
   through `rewardsoup.scoring.rewards.score_texts` (left truncation to `max_length`: each candidate on its
   own, or all of a prompt's candidates by one common cut with `scoring.truncation=joint`); a routed soup
   folder scores them through `routing.scorer.RoutedScorer`, a prompt's candidates under one gate;
3. output: a jsonl (atomic) with, per prompt, every candidate and its reward and the argmax as `chosen`;
   `mode=preferences` writes best/worst as canonical pairwise rows (`prompt`, `chosen`, `rejected`,
   `margin`) that `train.py data=local_pairs data.source=FILE objective=pairwise` reads.

"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.tracking import start_run
from rewardsoup.data.render import render_prompt_and_reply
from rewardsoup.models.loading import load_scorer
from rewardsoup.routing.folder import is_routed
from rewardsoup.routing.scorer import RoutedScorer
from rewardsoup.sampling.generation import device_of, generate_replies, load_generator
from rewardsoup.sampling.prompts import PromptItem, cli_prompts, read_candidates, read_prompts
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.prefix import group_sizes, score_text_groups


def score_candidates(model, tokenizer, items: Sequence[PromptItem], replies: Sequence[Sequence[str]],
                     style: str, max_length: int, batch_size: int,
                     share_prefix: bool = False,
                     truncation: str = "independent") -> list[tuple[list[tuple[str, str]], np.ndarray]]:
    """Per prompt: the (prompt_text, reply_text) split of each rendered candidate and its reward.

    `prompt_text + reply_text == render_conversation(messages + [reply])`, the text that is scored.
    """
    split = [[render_prompt_and_reply(item.messages, item.reply(r), style, tokenizer) for r in reps]
             for item, reps in zip(items, replies)]
    texts, groups = [p + r for parts in split for p, r in parts], group_sizes([len(parts) for parts in split])
    if isinstance(model, RoutedScorer):  # a routed soup: a prompt's candidates share its one set of weights
        rewards = model.score_texts(texts, max_length, batch_size, groups, truncation, share_prefix)
    else:
        rewards = score_text_groups(model, tokenizer, texts, groups, max_length, batch_size, share_prefix, truncation)
    ends = np.cumsum([len(parts) for parts in split])
    return [(parts, rewards[end - len(parts):end]) for parts, end in zip(split, ends)]


def reward_scorer(path: Path) -> tuple:
    """(model, tokenizer) of a saved reward model, or (RoutedScorer, its tokenizer) of a routed soup folder."""
    if is_routed(path):
        scorer = RoutedScorer.from_folder(path)
        return scorer, scorer.tokenizer
    return load_scorer(path)


def best_row(item: PromptItem, replies: Sequence[str], parts, rewards: np.ndarray,
             generator: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One output line of mode=best: prompt, every candidate with its reward, the argmax as `chosen`, and the
    generator that wrote the candidates (`{"name", "family"}`; None when reranking given replies)."""
    k = int(np.argmax(rewards))
    return {"where": item.where, "messages": item.messages, "prompt": parts[0][0], "generator": generator,
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
    from tqdm import tqdm
    from transformers import set_seed

    n, mode = int(cfg.n), str(cfg.mode)  # checked by sampling/config.py's rules (run_job)
    items, source, rerank = _items(cfg)
    gen_cfg, device = cfg.generation, device_of(cfg.get("device"))
    model, tokenizer = reward_scorer(Path(str(cfg.reward_model)).expanduser())
    model.to(device)
    gen = None if rerank else load_generator(str(cfg.generator), str(gen_cfg.get("dtype", "auto")), device)
    name = f"{source}-{mode}-{'rerank' if rerank else f'n{n}-seed{cfg.seed}'}.jsonl"
    origin = None if rerank else {"name": str(cfg.generator), "family": gen.family}
    output = Path(str(cfg.output)) if cfg.get("output") else Path(cfg.paths.root) / "samples" / name
    set_seed(int(cfg.seed))
    rows, lines, table, skipped = [], [], [], Counter()
    batch = int(gen_cfg.batch_prompts)
    with start_run(cfg, job_type="sample", name=f"sample-{source}-{mode}") as tracker:
        bar = tqdm(total=len(items), desc="best-of-N" if not rerank else "rerank", unit="prompt")
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            replies = [it.candidates for it in chunk] if rerank else generate_replies(gen, chunk, n, gen_cfg)
            with scoring.autocast(cfg, device):
                scored = score_candidates(model, tokenizer, chunk, replies, str(cfg.render_style),
                                          int(cfg.max_length), int(cfg.score_batch_size),
                                          scoring.share_prefix(cfg), scoring.truncation(cfg))
            for i, (item, reps, (parts, rewards)) in enumerate(zip(chunk, replies, scored)):
                row = best_row(item, reps, parts, rewards, origin)
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
