"""merge.py's soup stage: merge methods (mergekit's registry), tensor math, TIES trimming, pre-flight checks,
in-memory merges and mergekit exports."""
