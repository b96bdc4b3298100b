"""The search strategies of merge.py, one module each, mirrored by conf/search/: `grid` (Hydra's basic sweeper
over explicit values), `optuna` (the rewardsoup_optuna sweeper: TPE, CMA-ES, random, NSGA-II, with pruning),
`proxy` (logit-ensemble screening), `layerwise` (per-layer TIES coefficients learned by gradient),
`cmaes_layers` (the CMA-ES search space over layer groups), `greedy` (the model-soups baselines), and `jobs`
(merge.py's `mode` -> the strategy). They record trials through the sweep machinery below them
(`rewardsoup.sweep`: ledger, record, study, pick)."""
