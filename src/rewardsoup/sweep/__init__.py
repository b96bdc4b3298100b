"""merge.py -m's stage: in-memory trials, the objective, the ledger, grid/greedy/uniform searches and the pick."""
