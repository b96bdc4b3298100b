"""The whole recipe on top of every stage (`make demo`, `make report-real`): `python -m rewardsoup.pipeline`."""
