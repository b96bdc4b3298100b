"""train.py's stage: objectives (binary BCE, pairwise Bradley-Terry) and fine-tuning one member."""
