# Both main targets create or reuse .venv on their own; only Python 3.11+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced

.PHONY: run serve test lint fmt bench chaos clean venv

run: $(STAMP) ## the embedded default: moto in-process, rules provider, bundled samples
	$(BIN)/secops demo

serve: $(STAMP) ## the demo, then its backend kept up (Ctrl-C stops it) for a second shell's secops commands
	$(BIN)/secops demo --serve

# Four workers on two cores: the integration tests mostly wait (moto over HTTP, worker
# subprocesses, drain timeouts), so the suite takes about 7 minutes instead of 15.
# --dist loadfile keeps each file's module fixtures on one worker.
test: $(STAMP) ## the whole test suite (exit 5, "no tests collected", fails)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 4 --dist loadfile

lint: $(STAMP) ## ruff, mypy (strict on secops_core and worker) and hadolint on both Dockerfiles
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile.agent Dockerfile.worker

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Throughput sweep (concurrency 1, 4, 16, 64; model 200 ms, then 0 ms): a few minutes.
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--events 500".
bench: $(STAMP) ## worker throughput against moto's server: bench/results.json, bench/efficiency.png
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Fault injection: 3 workers on one queue, 300 events, 5 % faults, SIGKILLs, one SIGTERM,
# then the invariants as JSON (exit 1 if one fails): 2-4 minutes on 2 cores.
# CHAOS_ARGS passes options through, e.g. make chaos CHAOS_ARGS="--seed 42 --fault-rate 0.1".
chaos: $(STAMP) ## workers under injected faults and kills; invariants as JSON, non-zero exit if one fails
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)

venv: $(STAMP)

# uv installs exactly what uv.lock pins (--frozen: never re-resolve on a user's machine).
# --inexact keeps uv itself, which lives in the same venv.
$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "secops-worker needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --all-extras --quiet
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results.json
