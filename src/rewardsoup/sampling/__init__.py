"""sample.py's stage: best-of-N generation with a reward model choosing the reply."""
