"""Best-of-N sampling with a reward model: `python sample.py reward_model=PATH n=4`."""

import hydra
from omegaconf import DictConfig

from rewardsoup.config import show_pending


@hydra.main(config_path="conf", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    show_pending(cfg, "sample.py", 6)


if __name__ == "__main__":
    main()
