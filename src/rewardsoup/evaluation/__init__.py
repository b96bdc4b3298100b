"""evaluate.py's stage: score members, soups, baselines and reference rows; paired comparisons, length bias,
best-of-N accuracy, result tables."""
