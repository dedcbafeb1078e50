# Plain entry points for newcomers and CI. Every target sets up what it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint test constraints test-floor sdk-contract demo bench bench-rate-limit bench-scale bench-ui bench-triggerer soak clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# constraints/apache-airflow-<v>.txt for every supported Airflow: resolved afresh, frozen, the venvs kept
# (.venvs/airflow-<v>) for the runs below. Pass VERSIONS="3.0.6" to redo one.
constraints:
	$(PYTHON) scripts/airflow_versions.py constraints $(VERSIONS)

# The floor Airflow (3.0.6): every unit test, then one real-scheduler end-to-end run, in its cached venv.
test-floor:
	$(PYTHON) scripts/airflow_versions.py test-floor

# NICE's own agent SDK (npm, pinned in tests/sandbox/sdk_contract/package-lock.json) against a fresh sandbox.
sdk-contract: install
	$(VENV)/bin/pytest tests/sandbox/test_sdk_contract.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .airflow

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/bench_sweep.py

# Issue 12's figures: pacing at a tenant's rate limit (beside the code before it), and a sweep's cost at scale.
bench-rate-limit: install
	$(PY) bench/bench_rate_limit.py

bench-scale: install
	$(PY) bench/bench_scale.py

bench-ui: install
	$(PY) bench/bench_ui.py

bench-triggerer: install
	$(PY) bench/bench_triggerer.py

soak: install
	$(PY) bench/soak.py --sessions 10000
