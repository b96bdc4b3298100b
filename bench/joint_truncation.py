"""Joint against independent truncation (conf/scoring `truncation`): does judging both replies of a long pair
against the same context change held-out accuracy?

Members (default: the `--recipe real` members under --root/members: the helpful member on the helpful set,
the harmless member on the harmless set, the multitask member on both) score the val and test splits of the
data configs (conf/data/shared_hh_*.yaml, read by the project's loaders from ../shared/data) at --max-length
(256, the members' training length), once tokenized with independent and once with joint truncation
(`evalset_from_split`), through the project's one scoring path (`score_evalsets`; a text both modes leave
alike is scored once). Per (member, set, split), and val+test pooled (disjoint rows): n, pairs affected (a
side longer than max_length), groups that fell back (a reply alone longer than max_length), accuracy of each
mode, and joint - independent with its paired 95% interval (`scoring.stats.paired`, per-row credit 1 / 0.5
tie / 0): "better" / "worse" only when the whole interval is above / below 0, otherwise "cannot tell at n=...";
then the same restricted to the affected pairs (the only rows joint truncation can change).

    .venv/bin/python bench/joint_truncation.py [--root outputs/real] [--max-length 256] [--batch 32]
        [--pairs shared_hh_helpful-pairwise:shared_hh_helpful,multitask:shared_hh_harmless] [--out table.md]

Skips cleanly (exit 0) when ../shared/data or the members are absent. Last line: JSON with every row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REWARDSOUP_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("REWARDSOUP_SHARED_DATA", str(SHARED))  # the data configs' source, wherever this runs from
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.core.atomic import atomic_write_text  # noqa: E402
from rewardsoup.data import load_splits  # noqa: E402
from rewardsoup.data.schema import pair_texts  # noqa: E402
from rewardsoup.evaluation.comparisons import verdict  # noqa: E402
from rewardsoup.models.loading import load_scorer  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.metrics import evalset_from_split, row_credit, score_evalsets  # noqa: E402

PAIRS = ["shared_hh_helpful-pairwise:shared_hh_helpful", "shared_hh_harmless-pairwise:shared_hh_harmless",
         "multitask:shared_hh_helpful", "multitask:shared_hh_harmless"]  # member folder : data config
SPLITS = ("val", "test")


def affected(tokenizer, ds, max_length: int) -> np.ndarray:
    """Per pair: a side's full text is longer than max_length tokens (the rows joint truncation can change)."""
    texts = [pair_texts(row) for row in ds]
    if not texts:
        return np.zeros(0, dtype=bool)
    lengths = [len(s) for s in tokenizer([t for pair in texts for t in pair], add_special_tokens=False)["input_ids"]]
    return np.array(lengths, dtype=np.int64).reshape(-1, 2).max(1) > max_length


def score_member(member: Path, data: str, max_length: int, batch: int) -> dict | None:
    """Per split: credits of both modes, the affected mask, fallback and changed-pair counts; None to skip."""
    model, tokenizer = load_scorer(member)
    splits = load_splits(compose_cfg("train", [f"data={data}"]).data, tokenizer)
    if splits.schema != "pairwise":
        print(f"skip {member.name} on {data}: schema {splits.schema}, not pairwise")
        return None
    sets = {(s, mode): evalset_from_split(data, "pairwise", getattr(splits, s), tokenizer, max_length, mode)
            for s in SPLITS for mode in ("independent", "joint")}
    start = time.perf_counter()
    scored = dict(zip(sets, score_evalsets(model, list(sets.values()), model.config.pad_token_id, batch)))
    wall = time.perf_counter() - start
    out = {}
    for s in SPLITS:
        ind, joint = sets[(s, "independent")], sets[(s, "joint")]
        changed = sum(ind.ids[i] != joint.ids[i] or ind.ids[i + ind.n] != joint.ids[i + ind.n] for i in range(ind.n))
        out[s] = {"independent": row_credit(ind, scored[(s, "independent")].rewards),
                  "joint": row_credit(joint, scored[(s, "joint")].rewards),
                  "affected": affected(tokenizer, getattr(splits, s), max_length),
                  "fallback": joint.fallback, "changed": int(changed)}
    out["val+test"] = {k: (np.concatenate([out[s][k] for s in SPLITS]) if isinstance(out["val"][k], np.ndarray)
                           else sum(out[s][k] for s in SPLITS)) for k in out["val"]}
    sizes = ", ".join(f"{s} {sets[(s, 'joint')].n}" for s in SPLITS)
    print(f"[bench] {member.name} on {data}: {sizes} pairs, both modes scored in {wall:.0f}s", flush=True)
    return {**out, "wall_s": wall}


def compare(part: dict, rows: np.ndarray | None = None) -> dict:
    """Accuracies of both modes and joint - independent (paired) on `rows` (all rows when None)."""
    ind, joint = part["independent"], part["joint"]
    if rows is not None:
        ind, joint = ind[rows], joint[rows]
    d = stats.paired(joint, ind)
    nan = float("nan")
    return {"n": int(len(ind)), "independent": float(ind.mean()) if len(ind) else nan,
            "joint": float(joint.mean()) if len(joint) else nan, **{k: d[k] for k in ("diff", "lo", "hi", "won", "lost")},
            "verdict": verdict(d)}


def _pct(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "-"


def _diff(c: dict) -> str:
    if not np.isfinite(c["lo"]):
        return "-"
    return f"{100 * c['diff']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}]"


def table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["member", "set", "split", "n", "affected", "changed", "fallback", "acc indep", "acc joint",
              "joint-indep, pts [95% CI]", "verdict", "affected: indep", "joint", "joint-indep, pts [95% CI]",
              "verdict"]
    lines = [[r["member"], r["set"], r["split"], str(r["all"]["n"]), str(r["affected"]["n"]), str(r["changed"]),
              str(r["fallback"]), _pct(r["all"]["independent"]), _pct(r["all"]["joint"]), _diff(r["all"]),
              r["all"]["verdict"], _pct(r["affected"]["independent"]), _pct(r["affected"]["joint"]),
              _diff(r["affected"]), r["affected"]["verdict"]] for r in rows]
    return header, lines


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT / "outputs" / "real"), help="outputs root holding members/")
    p.add_argument("--max-length", type=int, default=256, help="tokens (the real recipe's members train at 256)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--pairs", default=",".join(PAIRS), help="comma list of member_folder:data_config")
    p.add_argument("--out", default=None, help="also write the table (markdown)")
    return p.parse_args()


def main() -> None:
    a = _args()
    members = Path(a.root).resolve() / "members"
    if not any(SHARED.glob("hh-rlhf-*.jsonl.gz")):
        print(f"skip: no hh-rlhf files in {SHARED}")
        print(json.dumps({"skipped": f"no hh-rlhf files in {SHARED}"}))
        return
    rows, walls = [], {}
    for pair in [p.strip() for p in a.pairs.split(",") if p.strip()]:
        member, data = pair.split(":")
        if not (members / member / "config.json").exists():
            print(f"skip {member}: no member at {members / member}")
            continue
        parts = score_member(members / member, data, a.max_length, a.batch)
        if parts is None:
            continue
        walls[pair] = round(parts.pop("wall_s"), 1)
        for split, part in parts.items():
            rows.append({"member": member, "set": data, "split": split, "changed": part["changed"],
                         "fallback": part["fallback"], "all": compare(part),
                         "affected": compare(part, part["affected"])})
    if not rows:
        print(json.dumps({"skipped": f"no members under {members}"}))
        return
    header, lines = table(rows)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print(f"\njoint vs independent truncation at max_length {a.max_length}, members under {members}")
    for line in [header] + lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    print("affected: pairs with a side longer than max_length; changed: pairs whose ids differ between the modes; "
          "fallback: pairs cut independently under joint (a reply alone is too long). Differences are paired "
          "(same pairs, same member): 'better'/'worse' only when the whole 95% interval is above/below 0.")
    if a.out:
        md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(x) + " |" for x in lines]
        atomic_write_text(Path(a.out), "\n".join(md) + "\n")
    print(json.dumps({"max_length": a.max_length, "root": str(members.parent), "score_wall_s": walls, "rows": [
        {**{k: r[k] for k in ("member", "set", "split", "changed", "fallback")},
         **{part: {k: round(v, 4) if isinstance(v, float) else v for k, v in r[part].items()}
            for part in ("all", "affected")}} for r in rows]}))


if __name__ == "__main__":
    main()
