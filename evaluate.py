"""Held-out accuracy of members, soups and baselines on every dataset: `python evaluate.py split=test`."""

import hydra
from omegaconf import DictConfig

import rewardsoup.schemas  # noqa: F401  (registers the config schemas before Hydra composes)
from rewardsoup.core.jobs import entry, run_job


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rewardsoup.evaluation.job import evaluate_models

    run_job(evaluate_models, cfg)


if __name__ == "__main__":
    entry(main)
