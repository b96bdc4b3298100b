"""Schema of `proxy` (search=proxy, `rewardsoup.sweep.proxy`): screen many weight vectors with the logit-ensemble
proxy, merge only the best few for real. Values and their reasons are in conf/merge.yaml and conf/search/proxy.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

from omegaconf import MISSING

from rewardsoup.core.config import at_least_one, checked, finite, not_negative


@dataclass
class ProxyConfig:
    """How many candidates the proxy screens, how many are merged for real, and when the proxy is distrusted."""

    candidates: int = checked(check=at_least_one)  # weight vectors drawn from Dirichlet(1) and scored by the proxy
    top_k: int = checked(check=at_least_one)  # best-by-proxy weight vectors merged and scored for real
    seed: int = MISSING  # the candidates' and the fallback trials' random draws
    min_spearman: float = checked(check=finite)  # below this rank agreement (proxy vs real) the fallback runs
    fallback_trials: int = checked(check=not_negative)  # random real trials added when the proxy is distrusted
    # each top-k weight vector is merged at every density here (methods with a density); empty: merge.density
    densities: List[float] = field(default_factory=list)

    @staticmethod
    def rules(node: Any) -> list[tuple[str, str]]:
        bad = [d for d in node.densities if not (isinstance(d, (int, float)) and 0 < d <= 1)]
        return [("densities", f"every density must be in (0, 1]; got {bad}")] if bad else []
