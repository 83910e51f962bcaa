# Two commands on a fresh machine: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit e2e controlplane helm bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pf-webhook serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check webhook tests benchmarks
	$(BIN)/ruff format --check webhook tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

controlplane:
	tests/controlplane/build.sh

helm:
	tests/tools/helm/build.sh

unit: $(STAMP)
	$(BIN)/pytest -m 'not e2e' $(PYTEST_ARGS)

e2e: $(STAMP) controlplane helm
	PF_WEBHOOK_CONTROLPLANE="$$(tests/controlplane/build.sh)" PF_WEBHOOK_HELM="$$(tests/tools/helm/build.sh)" \
	  $(BIN)/pytest -m e2e $(PYTEST_ARGS)

test: lint $(STAMP) controlplane helm
	PF_WEBHOOK_CONTROLPLANE="$$(tests/controlplane/build.sh)" PF_WEBHOOK_HELM="$$(tests/tools/helm/build.sh)" \
	  $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_serve.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
