"""Fine-tune a generator (a causal LM) on the replies a reward model picked: tune.py and the loop's rounds."""
