"""Sweep trials: merge in memory into the resident model (`sweep.resident`), score the VAL splits, return
the objective (`sweep.objective`). The tokenized val sets come from memory or the on-disk evalset cache.

With a reporter (`sweep.pruning`: an Optuna trial whose sweep has a pruner) the val rows are scored in
`trial.chunks` random chunks, the same rows of every dataset's permutation for every trial; after each chunk
the running objective on the rows so far is reported, and the trial stops when the pruner says so (state
`pruned`, its partial scores kept). A trial that runs to the end gets exactly the one-pass numbers.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np
from omegaconf import DictConfig

from rewardsoup.core import precision
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.evalsets import load_evalset
from rewardsoup.scoring.metrics import EvalSet, Scored, metrics, score_evalsets, take_rows, text_index
from rewardsoup.sweep.objective import dataset_score, objective_value
from rewardsoup.sweep.pruning import Reporter
from rewardsoup.sweep.resident import resident

CHUNK_SEED = 0  # the chunks' row permutation: fixed, so every trial's running scores cover the same rows


def _objective(detail: Mapping[str, dict], objective: Mapping[str, Any]) -> tuple[dict, float]:
    per_dataset = {name: dataset_score(m, objective) for name, m in detail.items()}
    return per_dataset, objective_value(per_dataset, objective)


def _in_chunks(model, evalsets: list[EvalSet], chunks: int, batch: int, objective: Mapping[str, Any],
               report: Reporter, share: bool = False) -> tuple[list[Scored], str, int, list[float]]:
    """Score chunk after chunk, reporting the running objective; (scored so far, state, texts, steps)."""
    chunks = max(1, min([chunks] + [es.n for es in evalsets]))
    rng = np.random.default_rng(CHUNK_SEED)
    parts = [np.array_split(rng.permutation(es.n), chunks) for es in evalsets]
    rewards = [np.full(len(es.ids), np.nan) for es in evalsets]
    seen = [np.zeros(0, dtype=np.int64) for _ in evalsets]
    texts, steps = 0, []
    for k in range(chunks):
        subs = [take_rows(es, p[k]) for es, p in zip(evalsets, parts)]
        for i, s in enumerate(score_evalsets(model, subs, model.config.pad_token_id, batch, share)):
            rewards[i][text_index(evalsets[i], parts[i][k])] = s.rewards
            seen[i] = np.concatenate([seen[i], parts[i][k]])
        texts += sum(len(s.ids) for s in subs)
        so_far = [Scored(take_rows(es, rows), r[text_index(es, rows)]) for es, rows, r in zip(evalsets, seen, rewards)]
        _, value = _objective({es.name: metrics(s, bootstrap=0) for es, s in zip(evalsets, so_far)}, objective)
        steps.append(round(value, 6))
        if k < chunks - 1 and report(value, k + 1):
            return so_far, "pruned", texts, steps
    return [Scored(es, r) for es, r in zip(evalsets, rewards)], "complete", texts, steps


def score_request(cfg: DictConfig, request: Mapping[str, Any], report: Reporter | None = None) -> dict[str, Any]:
    """Merge `request` (from `rewardsoup.merging.soup.merge_request`) in memory and score every val set."""
    start = time.perf_counter()
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request, trim_ranks=bool(cfg.trial.get("trim_ranks", True)))
    merge_s = time.perf_counter() - start
    t = cfg.trial
    names = list(cfg.datasets)
    evalsets = [load_evalset(name, cfg.datasets[name], "val", request["base"], int(t.max_length), cfg.paths.cache,
                             scoring.truncation(cfg)) for name in names]
    objective, share = plain(cfg.sweep.objective), scoring.share_prefix(cfg)
    with scoring.autocast(cfg):  # scoring.dtype: bf16 forwards over the fp32 soup where the recipe says so
        if report is None:
            scored = score_evalsets(model, evalsets, model.config.pad_token_id, int(t.batch_size), share)
            state, texts, steps = "complete", sum(len(es.ids) for es in evalsets), []
        else:
            scored, state, texts, steps = _in_chunks(model, evalsets, int(t.get("chunks", 4)), int(t.batch_size),
                                                     objective, report, share)
    detail = {name: metrics(s, bootstrap=0) for name, s in zip(names, scored)}
    per_dataset, value = _objective(detail, objective)
    if not math.isfinite(value):
        raise ConfigError(f"objective is {value} (per dataset {per_dataset}); are the val splits empty?")
    return {"objective": value, "val": per_dataset, "val_detail": detail, "state": state, "texts": texts,
            "rewards": {name: sc.rewards for name, sc in zip(names, scored)},  # per text; not for the ledger
            "scoring_dtype": precision.resolve(scoring.dtype(cfg)), "steps": steps, "merge_s": round(merge_s, 3), "trial_s": round(time.perf_counter() - start, 3)}
