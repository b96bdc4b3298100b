"""Any two saved models paired on the same test rows: accuracy per set and the paired difference, with verdicts.

The pick's table compares each soup with the specialists, the multi-task model and the ensemble; a question
outside those (a LoRA member against its full fine-tune, one soup against another) is asked here, through the
one scoring path (`load_evalset` + `score_evalsets`, the trials' max_length, `--dtype` as the pick's table)
and the project's paired bootstrap (`rewardsoup.scoring.stats.paired`): "better" / "worse" only when the whole
95% interval is above / below 0, otherwise "cannot tell at n=...".

    .venv/bin/python bench/paired_models.py --models a=DIR b=DIR c=DIR d=DIR --pairs a:b,c:d [--datasets demo]
        [--split test] [--dtype auto] [--root outputs]

Last line: JSON {"acc": {model: {set: a}}, "pairs": [{"model", "against", "dataset", "diff", "lo", "hi", "n",
"verdict"}], "n": {set: rows}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.core import precision  # noqa: E402
from rewardsoup.evaluation.comparisons import verdict  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.scoring import config as scoring  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets  # noqa: E402


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="name=folder of each saved reward model")
    p.add_argument("--pairs", required=True, help="comma list of model:against")
    p.add_argument("--datasets", default="demo", choices=("demo", "real"))
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--dtype", default="auto", choices=precision.PRECISIONS)
    p.add_argument("--root", default=str(ROOT / "outputs"), help="paths.root (its cache holds the tokenized sets)")
    a = p.parse_args()
    a.models = dict(m.split("=", 1) for m in a.models)
    a.pairs = [tuple(x.split(":", 1)) for x in a.pairs.split(",") if x.strip()]
    bad = [n for pair in a.pairs for n in pair if n not in a.models]
    if bad:
        sys.exit(f"error: --pairs names {bad[0]!r}, which --models does not give")
    return a


def main() -> None:
    a = _args()
    cfg = compose_cfg("merge", [f"datasets={a.datasets}", f"paths.root={Path(a.root).resolve()}"])
    first = Path(next(iter(a.models.values())))
    sets = [load_evalset(n, cfg.datasets[n], a.split, first, int(cfg.trial.max_length), cfg.paths.cache,
                         scoring.truncation(cfg)) for n in cfg.datasets]
    credits = {}
    for name, folder in a.models.items():
        model = load_reward_model(folder)
        with precision.autocast(a.dtype):
            scored = score_evalsets(model, sets, model.config.pad_token_id, int(cfg.trial.batch_size))
        credits[name] = {s.evalset.name: row_credit(s.evalset, s.rewards) for s in scored}
        print(f"[bench] {name}: " + ", ".join(f"{k} {v.mean():.3f}" for k, v in credits[name].items()), flush=True)
    rows = []
    for model, other in a.pairs:
        for ds in credits[model]:
            d = stats.paired(credits[model][ds], credits[other][ds])
            rows.append({"model": model, "against": other, "dataset": ds, **{k: round(v, 4) if isinstance(v, float)
                                                                              else v for k, v in d.items()},
                         "verdict": verdict(d)})
    print(f"\n{a.split} split, {a.dtype} forwards; points, paired 95% interval on the same rows")
    print("| model | against | dataset | model acc | against acc | difference | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['against']} | {r['dataset']} | {credits[r['model']][r['dataset']].mean():.3f} | "
              f"{credits[r['against']][r['dataset']].mean():.3f} | {100 * r['diff']:+.1f} [{100 * r['lo']:+.1f}, "
              f"{100 * r['hi']:+.1f}] | {r['verdict']} |")
    print(json.dumps({"acc": {m: {k: round(float(v.mean()), 4) for k, v in c.items()} for m, c in credits.items()},
                      "pairs": rows, "n": {k: len(v) for k, v in next(iter(credits.values())).items()}}))


if __name__ == "__main__":
    main()
