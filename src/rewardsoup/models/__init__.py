"""Models: offline assets (embedded SmolLM2, GPT-2 tokenizer, tiny test models), the merge-ready base
(a cut with a one-logit head) and loading a saved reward model. Imports only `core` and `data`."""
