# Two commands on a fresh machine: `make run` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit e2e controlplane helm bench soak bench-json need-wrk clean pulsar-fixtures

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

# Regenerate tests/pulsar-fixtures/*.json from Pulsar's own worker classes (needs a JDK and Maven)
pulsar-fixtures: $(STAMP)
	$(BIN)/python -m tests.pulsar_cases

# Benchmarks (nothing asserted; see README "Benchmarks"). Load comes from wrk (Debian's package).
WRK_MISSING := wrk is not installed; on Debian/Ubuntu: sudo apt-get install -y wrk

need-wrk:
	@command -v wrk >/dev/null || { echo "$(WRK_MISSING)" >&2; exit 1; }

bench: need-wrk $(STAMP) controlplane
	PF_WEBHOOK_CONTROLPLANE="$$(tests/controlplane/build.sh)" $(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

SOAK_SECONDS ?= 180
soak: need-wrk $(STAMP)
	$(BIN)/python benchmarks/bench_serve.py --soak $(SOAK_SECONDS) $(SOAK_ARGS)

# orjson and uvloop, measured on their own (uvloop is installed into .venv for this only)
bench-json: $(STAMP)
	$(BIN)/pip install --quiet 'uvloop>=0.21'
	$(BIN)/python benchmarks/bench_json_loop.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
