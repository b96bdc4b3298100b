"""Sweep trials: merge in memory into the resident model (`sweep.resident`), score the VAL splits, return
the objective (`sweep.objective`). The tokenized val sets come from memory or the on-disk evalset cache."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from omegaconf import DictConfig

from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.scoring.evalsets import load_evalset
from rewardsoup.scoring.metrics import metrics, score_evalsets
from rewardsoup.sweep.objective import dataset_score, objective_value
from rewardsoup.sweep.resident import resident


def score_request(cfg: DictConfig, request: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `request` (from `rewardsoup.merging.soup.merge_request`) in memory and score every val set."""
    start = time.perf_counter()
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request, trim_ranks=bool(cfg.trial.get("trim_ranks", True)))
    merge_s = time.perf_counter() - start
    t = cfg.trial
    names = list(cfg.datasets)
    evalsets = [load_evalset(name, cfg.datasets[name], "val", request["base"], int(t.max_length), cfg.paths.cache)
                for name in names]
    scored = score_evalsets(model, evalsets, model.config.pad_token_id, int(t.batch_size))
    detail = {name: metrics(s, bootstrap=0) for name, s in zip(names, scored)}
    objective = plain(cfg.sweep.objective)
    per_dataset = {name: dataset_score(m, objective) for name, m in detail.items()}
    value = objective_value(per_dataset, objective)
    if not math.isfinite(value):
        raise ConfigError(f"objective is {value} (per dataset {per_dataset}); are the val splits empty?")
    return {"objective": value, "val": per_dataset, "val_detail": detail,
            "merge_s": round(merge_s, 3), "trial_s": round(time.perf_counter() - start, 3)}
