# Two commands do all set-up on a fresh clone:
#   make demo   -> creates .venv, installs avxai, runs the demo on the bundled model and utterance
#   make test   -> same set-up plus the test extras (and Debian's chromium for the report test), then the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= avxai-out
STAMP      := $(VENV)/.avxai-installed
TEST_STAMP := $(VENV)/.avxai-test-installed

.PHONY: demo test setup setup-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,speechbrain,hf,resemblyzer,vad]"
	touch $(TEST_STAMP)

setup: $(STAMP)

setup-test: $(TEST_STAMP)
	@if [ -x scripts/install_test_deps.sh ]; then scripts/install_test_deps.sh; fi

demo: setup
	$(BIN)/avxai demo --out $(OUT)

test: setup-test
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(OUT) .pytest_cache build dist
