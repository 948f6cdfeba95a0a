# `make demo`: create .venv, install, run the hello example on this machine.
# `make test`: install what the suite needs, then lint, type-check and run every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest bench install clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "targets needs Python >= 3.10; set PYTHON=/path/to/python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[studio]'
	@touch $@

PLUGINS := plugins/targets-slurm plugins/targets-provider-localsshd

$(VENV)/.installed-test: pyproject.toml $(PLUGINS:%=%/pyproject.toml) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' $(PLUGINS:%=-e ./%)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/targets run runconfigs/hello.yml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy
	$(BIN)/mypy plugins/targets-slurm/targets_slurm
	$(BIN)/mypy plugins/targets-provider-localsshd/targets_localsshd

pytest: $(VENV)/.installed-test
	bash scripts/test-services.sh
	$(BIN)/pytest -n auto --dist loadgroup tests $(PLUGINS:%=%/tests) $(PYTEST_ARGS)

test: lint typecheck pytest

# `make fuzz`: the long runs of the fuzz and fault suites (`make test` runs both bounded).
# fuzz-readers: FUZZ_EXAMPLES random inputs per file reader (prints how many each got).
# fuzz-faults: FAULT_TRIALS kill -9 trials per fault kind (client, supervisor, upload).
FUZZ_EXAMPLES ?= 20000
FAULT_TRIALS ?= 50
.PHONY: fuzz fuzz-readers fuzz-faults
fuzz: fuzz-readers fuzz-faults

fuzz-readers: $(VENV)/.installed-test
	TARGETS_FUZZ=long TARGETS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -s -q -p no:cacheprovider \
		-o timeout=0 tests/test_fuzz_readers.py -k ends_in_a_result

fuzz-faults: $(VENV)/.installed-test
	bash scripts/test-services.sh
	TARGETS_FAULT_TRIALS=$(FAULT_TRIALS) $(BIN)/pytest -q -n 2 -p no:cacheprovider -o timeout=0 \
		tests/test_faults.py -k "random_points or random_moments or mid_upload"

bench: $(VENV)/.installed-test
	bash scripts/test-services.sh
	$(BIN)/python benchmarks/run.py --write docs/performance.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
