"""The one path from text to reward and what a reward is worth: tokenize (left-truncated) -> forward ->
one logit (`rewards`), tokenized eval sets (`evalsets`), per-row credit and metrics (`metrics`), bootstrap
intervals and paired differences (`stats`). Training, evaluation, sweeps and sampling all score through it."""

from rewardsoup.scoring.rewards import scalar_score  # noqa: F401  (the public one-call API)
