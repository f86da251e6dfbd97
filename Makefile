# The two commands: `make plan` (render all stacks offline) and `make test` (everything CI checks).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACKS := sophia-ai-dev sophia-ai-staging sophia-ai-production
PLAN_DIR ?= build/plan
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: plan test lint typecheck unit check scripts-lint yaml-lint bench reference lock clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

plan: $(BIN)/.installed
	@for stack in $(STACKS); do $(BIN)/sophia-infra render $$stack --out $(PLAN_DIR) || exit 1; done

test: lint typecheck check unit plan scripts-lint yaml-lint

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

check: $(BIN)/.installed
	@for stack in $(STACKS); do $(BIN)/sophia-infra check $$stack || exit 1; done

unit: $(BIN)/.installed
	$(BIN)/pytest --cov --cov-report=term-missing -m "not bench"

scripts-lint: $(BIN)/.installed
	$(BIN)/shellcheck --severity=style components/scripts/*.sh .ci/run

yaml-lint: $(BIN)/.installed
	$(BIN)/yamllint --strict -c .yamllint.yaml .

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.render

# Regenerate the README's configuration reference from the model.
reference: $(BIN)/.installed
	$(BIN)/sophia-infra reference --update README.md

# Re-resolve the pins of pyproject.toml into constraints.txt (needs the package index).
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet '.[dev]'
	build/lock/bin/pip freeze --exclude-editable | grep -v '^sophia-ai-infrastructure' > constraints.txt

clean:
	rm -rf $(VENV) build .coverage .pytest_cache .mypy_cache .ruff_cache
