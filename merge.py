"""Merge named members into one soup with mergekit: `python merge.py merge=ties`."""

import hydra
from omegaconf import DictConfig

from rewardsoup.config import show_pending


@hydra.main(config_path="conf", config_name="merge", version_base="1.3")
def main(cfg: DictConfig) -> None:
    show_pending(cfg, "merge.py", 4)


if __name__ == "__main__":
    main()
