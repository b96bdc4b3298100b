"""One exception type for bad input, so entry points can print one clear line and exit non-zero.

Every message names the file, line, field or value at fault and what was expected. Stages raise the
subclass that fits; entry points catch `RewardSoupError` (see `rewardsoup.cli.run_job`).
"""


class RewardSoupError(Exception):
    """Bad input or configuration; the message alone tells the user what to fix."""


class DataError(RewardSoupError):
    """A data file, row or field is missing or malformed."""


class ConfigError(RewardSoupError):
    """A configuration value is unknown, missing or out of range."""


class ModelError(RewardSoupError):
    """A model cannot be found, loaded, or is of the wrong kind (e.g. not a 1-logit classifier)."""
