"""The model-soups baselines as searches (`mode=uniform`, `mode=greedy`, or search=greedy), recorded in the
sweep's ledger like any trial: the uniform soup (every member, equal weights) and the greedy soup."""

from __future__ import annotations

from omegaconf import DictConfig

from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep.record import record
from rewardsoup.sweep.references import ingredients


def run_uniform(cfg: DictConfig) -> float:
    """The uniform soup: an equal-weight linear merge of every member."""
    request = merge_request(cfg)
    return float(record(cfg, ingredients(request, sorted(request["members"]), "linear"), "uniform", "uniform")["objective"])


def run_greedy(cfg: DictConfig) -> float:
    """Greedy soup (Wortsman et al. 2022): rank members by their own val objective, then add each in turn
    to an equal-weight soup (method `greedy.method`, linear by default) if the objective improves."""
    request = merge_request(cfg)
    method = str(cfg.greedy.method)
    solo = {n: record(cfg, ingredients(request, [n], "linear"), "greedy", f"solo-{n}")["objective"]
            for n in sorted(request["members"])}
    order = sorted(solo, key=lambda n: -solo[n])
    soup, best = [order[0]], solo[order[0]]
    for n in order[1:]:
        value = record(cfg, ingredients(request, soup + [n], method), "greedy", f"add-{'+'.join(soup + [n])}")["objective"]
        if value > best:
            soup, best = soup + [n], value
    print(f"[rewardsoup] greedy soup: {soup} (val objective {best:.4f}; solo {solo})", flush=True)
    return float(best)
