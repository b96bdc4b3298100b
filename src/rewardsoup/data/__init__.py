"""Data layer: read sources, adapt them to the canonical pairwise/binary (and evaluation-only multi)
schemas, split and pair them.

See docs/CONTRACTS.md for the schemas and the data config.
"""

from rewardsoup.data.loading import Canonical, Splits, check_trainable, load_canonical, load_splits
from rewardsoup.data.pairs import build_pairs, pairs_to_binary
from rewardsoup.data.render import render_conversation

__all__ = [
    "Canonical",
    "Splits",
    "build_pairs",
    "check_trainable",
    "load_canonical",
    "load_splits",
    "pairs_to_binary",
    "render_conversation",
]
