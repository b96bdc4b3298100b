"""Config helpers shared by every entry point: resolvers and the error boundary of a job.

Importing this module registers the `abspath` resolver used by conf/paths (outputs are absolute paths
resolved against the launch directory; jobs never chdir).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from rewardsoup.core.errors import RewardSoupError


if not OmegaConf.has_resolver("abspath"):
    OmegaConf.register_new_resolver("abspath", lambda p: os.path.abspath(os.path.expanduser(str(p))))


def run_job(work: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run a stage's work function; bad input becomes one `error:` line on stderr and exit code 1."""
    try:
        return work(cfg)
    except RewardSoupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)

