"""Below every stage: errors, atomic writes, the job boundary (one `error:` line), W&B tracking, hub checks."""
