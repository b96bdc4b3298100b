"""Fine-tune a generator on best-of-N picks: `python tune.py picks=FILE [generator=SPEC] [output=DIR]`.

The picks file is `python sample.py mode=best`'s output (written by a generator of the same family); the loss
covers the chosen replies' tokens only (trl's SFTTrainer). The loop recipe runs this round after round.
"""

import hydra
from omegaconf import DictConfig

import rewardsoup.schemas  # noqa: F401  (registers the config schemas before Hydra composes)
from rewardsoup.core.jobs import entry, run_job


@hydra.main(config_path="conf", config_name="tune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rewardsoup.tuning.sft import tune_generator

    run_job(tune_generator, cfg)


if __name__ == "__main__":
    entry(main)
