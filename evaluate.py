"""Held-out accuracy of members, soups and baselines on every dataset: `python evaluate.py split=test`."""

import hydra
from omegaconf import DictConfig

from rewardsoup.core.jobs import run_job


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rewardsoup.evaluation.job import evaluate_models

    run_job(evaluate_models, cfg)


if __name__ == "__main__":
    main()
