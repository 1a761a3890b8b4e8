# Two commands matter: `make demo` (install and run the product on SQLite with local chains)
# and `make test` (install and run every check). Both build .venv and node_modules themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist workers for `make test`: the suite is mostly CPU-bound (anvil, PostgreSQL, Streamlit,
# chromium are all local), so on CI's 2 cores 2 workers beat 3 or 4 (README, "Development").
# Override: make test PYTEST_WORKERS=4
PYTEST_WORKERS ?= 2
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SYS_STAMP := var/.system-deps

.PHONY: demo test setup bytecode lint typecheck unit clean

setup: $(PY_STAMP) $(NODE_STAMP) $(SYS_STAMP) bytecode

# The project's own modules compiled to .pyc, as a wheel install does: the editable install leaves
# them as source, and where PYTHONDONTWRITEBYTECODE is set (as on this team's machines) every
# `recovery` command compiled them again, about 0.2 s of each start. Up-to-date files are skipped.
bytecode: $(PY_STAMP)
	$(BIN)/python -m compileall -q recovery chains app bench >/dev/null

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent compile
	touch $@

$(SYS_STAMP): scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	mkdir -p var && touch $@

lint: $(PY_STAMP)
	$(BIN)/ruff check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy recovery chains app bench tests

unit: setup
	$(BIN)/pytest -q

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy recovery chains app bench tests
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)

demo: setup
	$(BIN)/recovery demo

clean:
	rm -rf $(VENV) node_modules var contracts/build
