"""Held-out accuracy of members and soups: `python evaluate.py split=test`."""

import hydra
from omegaconf import DictConfig

from rewardsoup.config import show_pending


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    show_pending(cfg, "evaluate.py", 4)


if __name__ == "__main__":
    main()
