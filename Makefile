# Two commands for a fresh clone: `make demo` (sets up .venv-demo, the runtime
# dependencies only) and `make test` (sets up .venv with the dev extra).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_VENV ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-stamp
NODE_DIR := tests/interop/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp
SRC := ocpp_trio tests tools benchmarks examples fuzz soak

.PHONY: test test-fast test-sdist lint typecheck pytest docs docs-serve demo generate setup node-deps bench soak fuzz conformance clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

node-deps: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: $(STAMP)
	$(BIN)/python tools/generate_types.py --check
	$(BIN)/mypy --strict ocpp_trio tests/typing
	$(BIN)/pyright --pythonpath $(BIN)/python ocpp_trio tests/typing

generate: $(STAMP)
	$(BIN)/python tools/generate_types.py

pytest: $(STAMP) node-deps
	$(BIN)/python tools/import_schemas.py --check --installed
	$(BIN)/pytest

test: lint typecheck docs pytest

# The edit loop: every test but those marked slow (wheel and sdist builds, the
# soak, the benchmark runs, the Redis Cluster).
test-fast: $(STAMP) node-deps
	$(BIN)/pytest -m "not slow"

# The sdist tests itself: build it, unpack it, run `make test` there (a .venv
# of its own; ~8 min on 2 cores). tests/test_sdist.py does a quick version.
SDIST_DIR := build/sdist-test
test-sdist: $(STAMP)
	rm -rf $(SDIST_DIR)
	$(BIN)/python -m build --sdist --no-isolation --outdir $(SDIST_DIR) .
	tar -xzf $(SDIST_DIR)/ocpp_trio-*.tar.gz -C $(SDIST_DIR)
	cd $(SDIST_DIR)/ocpp_trio-*/ && $(MAKE) test PYTHON=$(PYTHON)

# Strict (mkdocs.yml): a warning, a dead link or anchor, a missing snippet fails.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

# The demo needs the runtime dependencies only, in a venv of its own.
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python -m ocpp_trio.cli demo

# `make bench BASELINE=<git revision>` also measures that revision, side by side in the same run.
BASELINE ?=
BENCH_BASELINE := $(if $(BASELINE),--baseline $(BASELINE),)

bench: $(STAMP) node-deps
	$(BIN)/python benchmarks/run.py $(BENCH_BASELINE) --out benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run.py --workloads idle --idle 10000 --strict off --runs 1 $(BENCH_BASELINE) --out benchmarks/RESULTS-idle-10000.md
	$(BIN)/python benchmarks/run.py --matrix --strict on $(BENCH_BASELINE) --append --out benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run.py --workloads calls --runs 5 --strict on --observability $(BENCH_BASELINE) --out benchmarks/RESULTS-observability.md
	printf '\n## (e) Validation, microseconds per validation\n\n' >> benchmarks/RESULTS.md
	$(BIN)/python benchmarks/validation_vs_jsonschema.py >> benchmarks/RESULTS.md
	printf '\n## (f) Start-up (fresh interpreter)\n\n' >> benchmarks/RESULTS.md
	$(BIN)/python benchmarks/startup.py $(BENCH_BASELINE) >> benchmarks/RESULTS.md

SOAK_ARGS ?= --stations 2000 --processes 4 --duration 180 --pace 20 --csms-pace 20
# The chaos soak, then every hostile-load case at the scale of the figures in
# soak/RESULTS.md (100 flooding stations; 500 for the unread flood), each
# against the revision before the hardening and the current tree.
soak: $(STAMP)
	$(BIN)/python soak/soak.py $(SOAK_ARGS) --report soak-report.json
	$(BIN)/python soak/hostile.py $(HOSTILE_ARGS) --flooders 100
	$(BIN)/python soak/hostile.py $(HOSTILE_ARGS) --cases 1b --flooders 500 \
		--md soak/RESULTS-hostile-500.md --report soak/hostile-500-report.json

# One hostile station must not degrade the rest: each case against the
# revision before the hardening (a git worktree) and the current tree.
# Writes soak/RESULTS-hostile.md and soak/hostile-report.json (~10 min).
.PHONY: hostile
HOSTILE_ARGS ?= --baseline faab589
hostile: $(STAMP)
	$(BIN)/python soak/hostile.py $(HOSTILE_ARGS)

fuzz: $(STAMP)
	$(BIN)/python fuzz/fuzz_frames.py --hypothesis --examples 100000
	$(BIN)/python fuzz/fuzz_handshake.py --hypothesis --examples 100000

# The Autobahn|Testsuite against the WebSocket transports (server and client);
# installs the suite into conformance/.venv27 (Python 2.7), or says why it cannot.
conformance: $(STAMP)
	$(BIN)/python conformance/run.py $(CONFORMANCE_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_VENV) site build dist .pytest_cache .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
