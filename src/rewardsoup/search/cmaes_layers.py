"""search=cmaes_layers: CMA-ES (Optuna's `CmaEsSampler`) over one TIES weight per (member, layer group), each
point a real in-memory trial run by `search.optuna`, for methods or objectives with no gradient
(`search.layerwise` learns the same weights by gradient).

Hydra's sweeper reads a static `params` space, so each recipe's space is a preset under conf/search/
(`cmaes_layers` for the demo's members, `cmaes_layers_real` for the real recipe's). This module writes that
preset for any members and base, and tests check the shipped presets equal what it writes:

    python -m rewardsoup.search.cmaes_layers --members helpful harmless --base outputs/real/bases/smollm2_135m-L4 \\
        --name cmaes_layers_real --overrides "members=real datasets=real paths.root=outputs/real" \\
        > conf/search/cmaes_layers_real.yaml
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from rewardsoup.merging.layers import float_tensor_names, layer_groups


def _model_order(group: str) -> tuple[int, int]:
    block = re.fullmatch(r"blocks?(\d+)(?:-\d+)?", group)
    return (1, int(block[1])) if block else ({"embed": 0, "norm": 2, "head": 3}[group], 0)


def groups_of(tensor_names: list[str], blocks_per_group: int = 1) -> list[str]:
    """The layer groups in model order (embed, blocks by number, norm, head), as `merging.layers` names them."""
    return sorted(set(layer_groups(tensor_names, blocks_per_group).values()), key=_model_order)


def population(n_weights: int) -> int:
    """CMA-ES's default population for `n_weights` dimensions (Hansen): 4 + floor(3 ln n)."""
    return 4 + int(3 * math.log(n_weights))


def preset(members: list[str], groups: list[str], name: str, overrides: str = "") -> str:
    """The conf/search/<name>.yaml text: a start of 0.5 per weight, a [0, 1] range each, two generations."""
    members, n = sorted(members), len(members) * len(groups)
    pop = population(n)
    lines = [
        "# @package _global_",
        f"# CMA-ES over layer groups: `python merge.py -m search={name}{' ' + overrides if overrides else ''}` (rerun to "
        "resume), then `mode=pick`.",
        f"# Members {', '.join(members)}; groups {', '.join(groups)}:",
        f"# {n} weights, each point a real in-memory trial.",
        "# Written by `python -m rewardsoup.search.cmaes_layers` (rewardsoup.search.cmaes_layers); regenerate, do not edit.",
        "defaults:",
        "  - override /hydra/sweeper: rewardsoup_optuna   # our plugin over current Optuna (src/hydra_plugins)",
        "sweep:",
        f"  name: {name.replace('_', '-')}-${{merge.method}}   # its own ledger and study",
        "merge:",
        "  layers:              # the start of every weight (CMA-ES's mean starts mid-range); merge.layers.<member>.<group>",
        *[f"    {m}: {{{', '.join(f'{g}: 0.5' for g in groups)}}}  # 0.5: the middle of the searched range"
          for m in members],
        "hydra:",
        "  sweeper:",
        f"    sampler: cmaes        # a joint Gaussian over all {n} weights: learns their correlations, no start-up trials",
        "    seed: 0               # same seed, same trials",
        "    direction: maximize   # the trial returns the val objective",
        f"    n_trials: {2 * pop}          # two generations of CMA-ES's population (4 + 3 ln {n} = {pop}): a first look, "
        "not convergence",
        "    n_jobs: 1             # trials per launcher batch",
        "    storage: sqlite:///${sweep.dir}/optuna.db   # resumable",
        "    study_name: ${sweep.name}   # one study per sweep folder",
        "    heartbeat_interval: 10   # a running trial beats every 10 s",
        "    grace_period: 120        # a silent trial has lost its worker after this",
        "    max_retry: 2             # a dead worker's trial is retried at most twice",
        "    constraints: false       # CmaEsSampler does not read constraints; the pick still applies the floors",
        "    pruner: none             # every trial scored in full",
        "    pruner_kwargs: {}        # no pruner settings",
        "    simplex: null            # the global weights are not searched: the layer weights replace them",
        "    params:                  # each weight in [0, 1]: TIES normalises among agreeing members, so ratios matter",
        *[f"      merge.layers.{m}.{g}: {{low: 0.0, high: 1.0}}   # {m}'s weight on {g}" for m in members for g in groups],
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a conf/search preset of CMA-ES over layer groups.")
    ap.add_argument("--members", nargs="+", required=True, help="the members' names (merge.weights keys)")
    ap.add_argument("--base", required=True, help="the base checkpoint folder (its tensor names give the groups)")
    ap.add_argument("--name", default="cmaes_layers", help="the preset's name (conf/search/<name>.yaml)")
    ap.add_argument("--blocks-per-group", type=int, default=1, help="transformer blocks sharing one weight")
    ap.add_argument("--overrides", default="", help="what else the command in the header needs (members=real ...)")
    a = ap.parse_args(argv)
    groups = groups_of(float_tensor_names(Path(a.base)), a.blocks_per_group)
    sys.stdout.write(preset(a.members, groups, a.name, a.overrides))


if __name__ == "__main__":
    main()
