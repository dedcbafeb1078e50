# Plain entry points for newcomers and CI. Every target sets up what it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The newest Airflow we support, installed with the resolved set we test it with (docs/airflow-versions.md).
NEWEST_CONSTRAINTS := constraints/apache-airflow-3.3.2.txt

.PHONY: install lint test test-deps check-test-deps docs dist constraints test-floor test-versions sdk-contract demo bench bench-rate-limit bench-peers bench-handwired bench-scale bench-ui bench-triggerer soak clean

$(STAMP): setup.cfg pyproject.toml $(NEWEST_CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,docs]" -c $(NEWEST_CONSTRAINTS)
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The end-to-end tests need Debian's redis-server, PostgreSQL, chromium, nodejs and npm. `make test` stops
# when one is missing (make test-deps installs them); `make test E2E=0` runs without the end-to-end tests,
# and pytest then says, last, how many it did not run.
E2E ?= 1
E2E_PROGRAMS := redis-server chromium node npm
E2E_PACKAGES := postgresql redis-server chromium nodejs npm

test: lint check-test-deps
	CXONE_E2E=$(E2E) $(VENV)/bin/pytest $(PYTEST_ARGS)

check-test-deps:
ifneq ($(E2E),0)
	@missing=""; \
	for program in $(E2E_PROGRAMS); do command -v $$program >/dev/null || missing="$$missing $$program"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing PostgreSQL(initdb)"; \
	if [ -n "$$missing" ]; then \
		echo "make test: the end-to-end tests need:$$missing."; \
		echo "  Install them with: make test-deps   (as root; apt-get install $(E2E_PACKAGES))"; \
		echo "  Or run without the end-to-end tests: make test E2E=0"; \
		exit 1; \
	fi
endif

# Debian's packages for the end-to-end tests (as root): what .ci/run installs.
test-deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make test-deps installs Debian packages: run it as root (sudo make test-deps)"; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(E2E_PACKAGES)

# The docs (Sphinx + MyST) into docs/_build/html; warnings are errors. tests/system/test_docs.py builds them too.
docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

# A wheel and an sdist in dist/, checked as the package index would check them (build and twine come with the
# test extra; tests/provider/test_wheel_install.py runs the same two commands and installs the wheel).
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# constraints/apache-airflow-<v>.txt for every supported Airflow: resolved afresh, frozen, the venvs kept
# (.venvs/airflow-<v>) for the runs below. Pass VERSIONS="3.0.6" to redo one.
constraints:
	$(PYTHON) scripts/airflow_versions.py constraints $(VERSIONS)

# The floor Airflow (3.0.6): every unit test, then one real-scheduler end-to-end run, in its cached venv.
test-floor:
	$(PYTHON) scripts/airflow_versions.py test-floor

# CI's Airflow matrix beside `make test` (the newest, whole): the floor run, then the version tests on 3.1 and 3.2.
test-versions:
	$(PYTHON) scripts/airflow_versions.py test-versions

# NICE's own agent SDK (npm, pinned in tests/sandbox/sdk_contract/package-lock.json) against a fresh sandbox.
sdk-contract: install
	$(VENV)/bin/pytest tests/sandbox/test_sdk_contract.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venvs .pytest_cache .mypy_cache .ruff_cache .airflow docs/_build dist

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/bench_sweep.py

# Issue 12's figures: pacing at a tenant's rate limit (beside the code before it), and a sweep's cost at scale.
bench-rate-limit: install
	$(PY) bench/bench_rate_limit.py

# Issue 24's figures: the sweep's pacing beside botocore's adaptive limiter, a fixed bucket at the true
# rate and the previous release, one run, one sandbox; then 2 and 4 sweeps sharing a Redis budget.
# Needs redis-server (Debian's); writes bench-peers.json.
bench-peers: install
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) bench/bench_vs_peers.py

# Issue 24's figures: the sweep beside HttpOperator + BranchPythonOperator per session, on a real scheduler
# (LocalExecutor + PostgreSQL, Debian's postgresql). 1,000 sessions x 3 repeats take hours on 2 cores (docs/pacing.md):
# SESSIONS=200 REPEATS=1 for a quick look. Writes bench-handwired.json.
SESSIONS ?= 1000
REPEATS  ?= 3
bench-handwired: install
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) bench/bench_vs_handwired.py --sessions $(SESSIONS) --repeats $(REPEATS) --json bench-handwired.json

bench-scale: install
	$(PY) bench/bench_scale.py

bench-ui: install
	$(PY) bench/bench_ui.py

bench-triggerer: install
	$(PY) bench/bench_triggerer.py

soak: install
	$(PY) bench/soak.py --sessions 10000
