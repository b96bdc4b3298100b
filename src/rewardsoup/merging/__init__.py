"""merge.py's soup stage, one module per job: `methods` (merge methods derived from mergekit's registry,
`resolve`), `tensor_math` and `trim` (mergekit's math, fast TIES trimming), `checks` (checkpoints on disk),
`state_dicts` (load / apply), `in_memory` (merge_in_memory), `on_disk` (mergekit YAML, preflight,
merge_to_disk) and `soup` (the merge.py job)."""
