"""What a routed soup costs against its static soup, on the same texts, alone (issue #30 item 5).

A routed soup folder (`python merge.py search=routed` after a sweep) holds the shared model (the sweep's pick:
the static soup), each member's difference and the router. On the val splits of a dataset group, tokenized as
the scoring path tokenizes them (`search.routed.route_sets`: max_length and truncation of the sweep), every set
is scored three ways, each timed as the best of `--repeats` passes after one warm-up, in the scoring precision:
- static: the shared model alone through `scoring.rewards.score_ids` (one forward per text);
- routed: the gate of each row's prompt (features + router, timed with it) and one forward per text with the
  differences added (`routing.scorer.score_routed_ids`);
- mixing: the reference that routes the members' *outputs*: each member's own forward per text (K forwards),
  the members' folders as the manifest names them (skipped with `--skip-mixing`).
Each set is scored on its own (no text shared across sets is scored once), so the three see the same texts.
Memory beyond the static soup: the differences and the router, in bytes, per parameter of the static soup
and member. Router training time: the manifest's fit (`fit_s`) and the whole build (`wall_s`).

    .venv/bin/python bench/routed_cost.py [--root outputs] [--folder DIR] [--datasets demo|real] [--rows N]
                                          [--batch 32] [--repeats 2] [--dtype auto] [--skip-mixing]

Last line: JSON {"time_ratio": routed s/text / static s/text, "mixing_ratio", "static_s_per_text",
"routed_s_per_text", "mixing_s_per_text", "extra_bytes", "bytes_per_param_member", "fit_s", "build_s", "rank",
"members", "texts", "sets", "dtype", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.core import precision  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.routing.folder import SHARED as SHARED_DIR, load_routed  # noqa: E402
from rewardsoup.routing.scorer import score_routed_ids  # noqa: E402
from rewardsoup.routing.sets import text_gates  # noqa: E402
from rewardsoup.scoring.rewards import score_ids  # noqa: E402
from rewardsoup.search.routed import route_sets  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    """(best wall of `repeats` timed calls after one warm-up, the last result)."""
    out, walls = fn(), []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - start)
    return min(walls), out


def extra_bytes(routed, router) -> int:
    """The differences and the router: what a routed soup holds beyond its static soup."""
    held = sum(b.numel() * b.element_size() for b in routed.stacks.buffers())
    return held + sum(t.numel() * t.element_size() for t in router.state_dict().values())


def measure(args) -> dict:
    folder = Path(args.folder or Path(args.root) / "soups" / "routed-optuna-ties")
    routed, router, manifest = load_routed(folder)
    shared = routed.model.eval()
    cfg = compose_cfg("merge", [f"datasets={args.datasets}", f"paths.root={args.root}",
                                f"routed.prompt_length={manifest['prompt_length']}"])
    cfg.routed.prompt_end = manifest["prompt_end"]  # the fit's own prompt rule (a regex: no override quoting)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder / SHARED_DIR))
    pad = tokenizer.pad_token_id
    sets = route_sets(cfg, tokenizer, shared.get_input_embeddings().weight.detach(), str(folder / SHARED_DIR))
    if args.rows:
        sets = [type(rs)(rs.name, rs.schema, _first(rs, args.rows), rs.labels if rs.labels is None
                         else rs.labels[:args.rows], rs.feats[:args.rows]) for rs in sets]
    members = {} if args.skip_mixing else {m: load_reward_model(p).eval()
                                           for m, p in sorted(manifest["shared"]["members"].items())}
    texts = sum(len(rs.ids) for rs in sets)
    dtype = precision.resolve(args.dtype, "cpu")
    out = {"static": 0.0, "routed": 0.0, "mixing": 0.0}
    with precision.autocast(dtype, "cpu"):
        for rs in sets:
            out["static"] += best_of(lambda: score_ids(shared, rs.ids, pad, args.batch), args.repeats)[0]
            out["routed"] += best_of(lambda: score_routed_ids(routed, rs.ids, text_gates(router, rs), pad, args.batch),
                                     args.repeats)[0]
            for model in members.values():
                out["mixing"] += best_of(lambda: score_ids(model, rs.ids, pad, args.batch), args.repeats)[0]
    n_params = sum(p.numel() for p in shared.parameters())
    extra = extra_bytes(routed, router)
    fit = manifest.get("fit") or {}
    return {"time_ratio": round(out["routed"] / out["static"], 3),
            "mixing_ratio": round(out["mixing"] / out["static"], 3) if members else None,
            "static_s_per_text": out["static"] / texts, "routed_s_per_text": out["routed"] / texts,
            "mixing_s_per_text": out["mixing"] / texts if members else None,
            "extra_bytes": extra, "bytes_per_param_member": round(extra / (n_params * len(routed.members)), 4),
            "static_params": n_params, "fit_s": fit.get("fit_s"), "build_s": manifest.get("wall_s"),
            "rank": manifest["rank"], "members": routed.members, "texts": texts,
            "sets": {rs.name: len(rs.ids) for rs in sets}, "dtype": dtype, "batch": args.batch,
            "threads": torch.get_num_threads(), "folder": str(folder)}


def _first(rs, rows: int) -> list:
    """The first `rows` rows' texts (pairs: chosen then rejected)."""
    if rs.schema == "pairwise":
        return rs.ids[:rows] + rs.ids[rs.n:rs.n + rows]
    return rs.ids[:rows]


def table(r: dict) -> None:
    per = lambda s: f"{1000 * s:.2f}" if s is not None else "skipped"  # noqa: E731
    print(f"routed soup {r['folder']}: members {r['members']}, rank {r['rank']}, {r['texts']} texts "
          f"({r['sets']}), {r['dtype']}, batch {r['batch']}, {r['threads']} threads\n")
    print("| path | ms per text | against the static soup |")
    print("|---|---:|---:|")
    print(f"| static soup (the shared model alone) | {per(r['static_s_per_text'])} | 1.00x |")
    print(f"| routed soup (gate + one forward) | {per(r['routed_s_per_text'])} | {r['time_ratio']:.2f}x |")
    mix = f"{r['mixing_ratio']:.2f}x" if r["mixing_ratio"] is not None else "skipped"
    print(f"| output mixing (one forward per member) | {per(r['mixing_s_per_text'])} | {mix} |")
    print(f"\nmemory beyond the static soup: {r['extra_bytes'] / 2**20:.1f} MiB = {r['bytes_per_param_member']:.3f} "
          f"bytes per parameter ({r['static_params'] / 1e6:.1f}M) and member; router fit {r['fit_s']} s "
          f"(whole build {r['build_s']} s)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=os.environ.get("REWARDSOUP_OUTPUTS", str(ROOT / "outputs")))
    p.add_argument("--folder", default=None, help="routed soup folder (default: <root>/soups/routed-optuna-ties)")
    p.add_argument("--datasets", default="demo", choices=("demo", "real"))
    p.add_argument("--rows", type=int, default=0, help="first N val rows per set (0: all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--dtype", default="auto", help="the scoring precision: auto | bf16 | fp32 (scoring.dtype)")
    p.add_argument("--skip-mixing", action="store_true", help="do not time the members' own forwards")
    args = p.parse_args()
    if args.datasets == "real" and not SHARED.exists():
        sys.exit(f"--datasets real needs {SHARED}")
    result = measure(args)
    table(result)
    print(json.dumps(result, default=lambda x: x.item() if isinstance(x, np.generic) else str(x)))


if __name__ == "__main__":
    main()
