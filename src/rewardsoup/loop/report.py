"""Judge the loop: every round's greedy held-out replies scored by its picker and by the judge, round against
round 0 on the same prompts, one table, a plot and the warnings a user needs before trusting the curve.

Per picker and round: mean reward under the picker and under the judge (through the scoring path sample.py
uses, `sampling.job.score_candidates`), the judge's win rate of round r against round 0 (per prompt 1 when
the judge scores round r's reply higher, 0.5 for a tie, 0 when lower) with its bootstrap 95% interval
(`scoring.stats.interval`): "better" / "worse" when the interval excludes 0.5, else "cannot tell at n=...";
the picker's own win rate the same way, and the mean reply length in words. Below, the final rounds of each
two pickers head to head under the judge. Warnings: the picker's reward rises while the judge's win rate
falls below 0.5 (over-optimisation: the loop climbs what picked, not what a second model prefers), and
replies grow longer while the judge cannot tell them better.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_write_json, atomic_write_text
from rewardsoup.core.tracking import start_run
from rewardsoup.loop.config import LoopSettings
from rewardsoup.loop.rounds import HELDOUT, round_dir
from rewardsoup.models.loading import load_scorer
from rewardsoup.sampling.generation import device_of
from rewardsoup.sampling.job import score_candidates
from rewardsoup.sampling.prompts import PromptItem, read_jsonl
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.stats import interval

LONGER = 0.10  # a mean reply length this much above round 0's is "longer" (the length warning)


def read_replies(path: Path) -> tuple[list[PromptItem], list[str]]:
    rows = [row for _, row in read_jsonl(path, "held-out replies")]
    return [PromptItem(r["messages"], r["where"], r.get("reply_name")) for r in rows], [r["reply"] for r in rows]


def score_files(model_path: Path, files: list[Path], scfg: DictConfig) -> list[np.ndarray]:
    """The reward of every reply in each held-out file, one model load for all of them."""
    device = device_of(scfg.device)
    model, tokenizer = load_scorer(model_path)
    model.to(device)
    out = []
    for path in files:
        items, replies = read_replies(path)
        with scoring.autocast(scfg, device):
            scored = score_candidates(model, tokenizer, items, [[r] for r in replies], str(scfg.render_style),
                                      int(scfg.max_length), int(scfg.score_batch_size), scoring.share_prefix(scfg),
                                      scoring.truncation(scfg))
        out.append(np.array([float(rewards[0]) for _, rewards in scored]))
    return out


def win_rate(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Share of prompts where a's reply scores above b's (ties count half), its 95% interval and verdict."""
    credit = (a > b).astype(float) + 0.5 * (a == b)
    lo, hi = interval(credit)
    verdict = "better" if lo > 0.5 else "worse" if hi < 0.5 else f"cannot tell at n={len(credit)}"
    return {"win_rate": float(credit.mean()), "lo": lo, "hi": hi, "n": int(len(credit)), "verdict": verdict}


def _words(path: Path) -> float:
    return float(np.mean([len(r.split()) for r in read_replies(path)[1]]))


def _picker_rows(name: str, files: list[Path], own: list[np.ndarray], judged: list[np.ndarray]) -> list[dict]:
    rows = []
    for r, path in enumerate(files):
        rows.append({"picker": name, "round": r, "picker_reward": float(own[r].mean()),
                     "judge_reward": float(judged[r].mean()),
                     "judge_vs_round0": win_rate(judged[r], judged[0]) if r else None,
                     "picker_vs_round0": win_rate(own[r], own[0]) if r else None, "words": _words(path)})
    return rows


def warnings(rows: list[dict]) -> list[str]:
    out, base = [], rows[0]
    for row in rows[1:]:
        judge, tag = row["judge_vs_round0"], f"'{row['picker']}' round {row['round']}"
        if row["picker_reward"] > base["picker_reward"] and judge["win_rate"] < 0.5:
            out.append(f"over-optimisation: {tag} raises its picker's reward ({base['picker_reward']:+.3f} -> "
                       f"{row['picker_reward']:+.3f}) while the judge prefers round 0 (win rate "
                       f"{judge['win_rate']:.3f} [{judge['lo']:.3f}, {judge['hi']:.3f}])")
        if row["words"] > (1 + LONGER) * base["words"] and judge["lo"] <= 0.5:
            out.append(f"longer, not better: {tag} replies are {row['words'] / base['words'] - 1:+.0%} longer "
                       f"({base['words']:.1f} -> {row['words']:.1f} words) and the judge cannot tell them better "
                       f"(win rate {judge['win_rate']:.3f} [{judge['lo']:.3f}, {judge['hi']:.3f}])")
    return out


def _cell(w: dict | None) -> str:
    return "(reference)" if w is None else f"{w['win_rate']:.3f} [{w['lo']:.3f}, {w['hi']:.3f}] {w['verdict']}"


def table(rows: list[dict], heads: list[dict], judge: str) -> str:
    lines = [f"| picker | round | picker reward | judge reward | judge win rate vs round 0 [95% CI] | "
             f"picker win rate vs round 0 | mean words |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['picker']} | {row['round']} | {row['picker_reward']:+.3f} | {row['judge_reward']:+.3f} | "
                     f"{_cell(row['judge_vs_round0'])} | {_cell(row['picker_vs_round0'])} | {row['words']:.1f} |")
    lines.append(f"\nJudge: `{judge}` (never a picker). Rewards are raw logits of each model (compare within a column).")
    if heads:
        lines += ["", "| final rounds head to head (judge) | judge win rate [95% CI] |", "|---|---|"]
        lines += [f"| {h['a']} vs {h['b']} (round {h['round']}) | {_cell(h)} |" for h in heads]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["picker"] for r in rows):
        mine = [r for r in rows if r["picker"] == name]
        x = [r["round"] for r in mine]
        line, = left.plot(x, [r["picker_reward"] - mine[0]["picker_reward"] for r in mine], "--o", label=f"{name}: picker")
        left.plot(x, [r["judge_reward"] - mine[0]["judge_reward"] for r in mine], "-s", color=line.get_color(),
                  label=f"{name}: judge")
        w = [r["judge_vs_round0"] or {"win_rate": 0.5, "lo": 0.5, "hi": 0.5} for r in mine]
        right.errorbar(x, [v["win_rate"] for v in w], yerr=[[v["win_rate"] - v["lo"] for v in w],
                       [v["hi"] - v["win_rate"] for v in w]], fmt="-o", capsize=4, color=line.get_color(), label=name)
    left.set(xlabel="round", ylabel="mean reward - round 0", title="held-out reward under picker and judge")
    right.axhline(0.5, color="grey", lw=1)
    right.set(xlabel="round", ylabel="judge win rate vs round 0", title="judge win rate (95% CI)")
    for ax in (left, right):
        ax.set_xticks(sorted({r["round"] for r in rows}))
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def judge_loop(loop: LoopSettings, pickers: dict[str, Path], judge: Path, folder: Path, scfg: DictConfig) -> dict:
    """Score every round's held-out replies, write table.md, summary.json and loop.png under `folder`."""
    k = int(loop.rounds)
    files = {name: [round_dir(folder, name, r) / HELDOUT for r in range(k + 1)] for name in pickers}
    unique = list(dict.fromkeys(f for fs in files.values() for f in fs))  # round 0's file is every picker's
    by_file = dict(zip(unique, score_files(judge, unique, scfg)))
    judged = {name: [by_file[f] for f in fs] for name, fs in files.items()}
    rows = [row for name, path in pickers.items()
            for row in _picker_rows(name, files[name], score_files(path, files[name], scfg), judged[name])]
    heads = [{"a": a, "b": b, "round": k, **win_rate(judged[a][k], judged[b][k])}
             for a, b in itertools.combinations(pickers, 2)]
    notes = [w for name in pickers for w in warnings([r for r in rows if r["picker"] == name])]
    text = table(rows, heads, str(judge))
    summary = {"rows": rows, "head_to_head": heads, "warnings": notes, "judge": str(judge),
               "pickers": {k_: str(v) for k_, v in pickers.items()}}
    atomic_write_text(folder / "table.md", text + "".join(f"\nWARNING: {w}" for w in notes) + ("\n" if notes else ""))
    atomic_write_json(folder / "summary.json", summary)
    image = plot(rows, folder / "loop.png")
    config = {"loop": dataclasses.asdict(loop), "pickers": summary["pickers"], "judge": str(judge)}
    with start_run(scfg, job_type="loop", name="loop", config=config) as tracker:
        tracker.table("loop/rounds", ["picker", "round", "picker_reward", "judge_reward", "judge_win_rate", "lo", "hi",
                                      "words"],
                      [[r["picker"], r["round"], r["picker_reward"], r["judge_reward"],
                        *[(r["judge_vs_round0"] or {}).get(k) for k in ("win_rate", "lo", "hi")], r["words"]] for r in rows])
        tracker.image("loop/plot", str(image))
    return {**summary, "table": text, "plot": str(image)}
