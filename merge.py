"""Merge members: a soup (`python merge.py merge=ties`), sweep trials (`python merge.py -m …`), the pick.

A single run writes a soup with mergekit; under `-m` every job is an in-memory trial scored on the val
splits (see rewardsoup.search.jobs); `mode=pick` exports and tests the best trial of a sweep.
"""

import hydra
from omegaconf import DictConfig

import rewardsoup.schemas  # noqa: F401  (registers the config schemas before Hydra composes)
from rewardsoup.core.jobs import entry, run_job


@hydra.main(config_path="conf", config_name="merge", version_base="1.3")
def main(cfg: DictConfig):
    from rewardsoup.search.jobs import merge_job

    return run_job(merge_job, cfg)


if __name__ == "__main__":
    entry(main)
