"""Best-of-N sampling with a reward model: `python sample.py reward_model=PATH prompts=FILE n=4`.

Also `prompt="..."` (or a list) instead of a file, `candidates=FILE` to rerank given replies, and
`mode=preferences` to write best-vs-worst pairs for `train.py data=local_pairs objective=pairwise`.
"""

import hydra
from omegaconf import DictConfig

import rewardsoup.schemas  # noqa: F401  (registers the config schemas before Hydra composes)
from rewardsoup.core.jobs import entry, run_job


@hydra.main(config_path="conf", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rewardsoup.sampling.job import sample_job

    run_job(sample_job, cfg)


if __name__ == "__main__":
    entry(main)
