"""Merge named members into one soup with mergekit: `python merge.py merge=ties`."""

import hydra
from omegaconf import DictConfig

from rewardsoup.config import run_job


@hydra.main(config_path="conf", config_name="merge", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rewardsoup.soup import merge_soup

    run_job(merge_soup, cfg)


if __name__ == "__main__":
    main()
