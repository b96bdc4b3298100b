"""Fine-tune one reward-model member: `python train.py data=demo_thumbs objective=binary`."""

import hydra
from omegaconf import DictConfig

import rewardsoup.schemas  # noqa: F401  (registers the config schemas before Hydra composes)
from rewardsoup.core.jobs import entry, run_job


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from rewardsoup.training.member import train_member

    return run_job(train_member, cfg)


if __name__ == "__main__":
    entry(main)
