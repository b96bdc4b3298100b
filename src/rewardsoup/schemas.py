"""Every stage's config schema, registered in Hydra's ConfigStore: import this before composing a config.

The entry points (train.py, merge.py, evaluate.py, sample.py, tune.py), `rewardsoup.pipeline` and tests/conftest.py
import it. It sits at the top, above every stage, because it imports all of them (`core` stays below all);
each stage's `config.py` holds its own schema and value rules (see `rewardsoup.core.config`).
"""

import rewardsoup.core.config  # noqa: F401  (paths, logger)
import rewardsoup.core.jobs  # noqa: F401  (the `abspath` resolver conf/paths uses)
import rewardsoup.data.config  # noqa: F401  (data, datasets.*)
import rewardsoup.evaluation.config  # noqa: F401  (evaluate.py's root)
import rewardsoup.merging.config  # noqa: F401  (merge, pick.seed_ties)
import rewardsoup.models.config  # noqa: F401  (model)
import rewardsoup.sampling.config  # noqa: F401  (sample.py's root)
import rewardsoup.scoring.config  # noqa: F401  (scoring)
import rewardsoup.search.config  # noqa: F401  (merge.py's root: the search strategies, sweep, trial, pick)
import rewardsoup.sweep.config  # noqa: F401  (sweep, trial, pick)
import rewardsoup.training.config  # noqa: F401  (objective, train, train.py's root)
import rewardsoup.tuning.config  # noqa: F401  (tune.py's root)
