"""rewardsoup: train reward models on several datasets, merge them into a soup, sweep, best-of-N."""

from rewardsoup.core.errors import RewardSoupError

__all__ = ["RewardSoupError"]
__version__ = "0.1.0"
