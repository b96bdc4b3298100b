"""`python -m rewardsoup.pipeline [--recipe demo|real] [overrides]`: the whole recipe."""

from rewardsoup.pipeline.run import main

main()
