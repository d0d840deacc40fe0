PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

COMPAT := powerplatform dataverse-api dynamics-client

.PHONY: demo admin browser test lint simulator benchmark benchmark-quick compat lock dist clean soak

# Installs the lock (every transitive dependency, pinned and hashed): exactly what CI tested.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# requirements.txt (the direct dependencies, pinned) -> requirements.lock; run after editing it
lock: $(STAMP)
	$(BIN)/uv pip compile requirements.txt -o requirements.lock --python-version 3.11 \
		--generate-hashes --quiet

# the library's wheel and sdist, in dist/
DIST ?= dist
dist: $(STAMP)
	rm -rf $(DIST) build
	$(BIN)/python -m build --no-isolation --outdir $(DIST) .

demo: $(STAMP)
	$(BIN)/python manage.py demo

# The admin on the demo data: the CRM simulator (demo seed) in the background, the superuser
# admin (password admin), runserver on http://127.0.0.1:8000/; Ctrl-C stops both.
admin: $(STAMP)
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py demo_superuser
	$(BIN)/python -m cdms_api.simulator --seed demo & trap 'kill $$!' EXIT; \
		$(BIN)/python manage.py runserver

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's chromium, for the admin's tests in a headless browser (tests/e2e): installed when
# missing and root; otherwise those tests skip, or fail under CI.
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@test -x $(CHROMIUM) || echo "$(CHROMIUM) is missing: the browser tests cannot run"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

simulator: $(STAMP)
	$(BIN)/python -m cdms_api.simulator --seed demo

# the fault soak (docs/operations.md): SOAK_ARGS="--operations 500 --seed 7" to choose
soak: $(STAMP)
	$(BIN)/python manage.py soak $(SOAK_ARGS)

# figures, never pass/fail (docs/benchmarks.md); BENCHMARK_ARGS="--only reads --runs 3" to choose
benchmark: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCHMARK_ARGS)

benchmark-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick $(BENCHMARK_ARGS)

# Dataverse's own clients against the simulator, each in a pinned environment of its own
compat: $(STAMP) $(COMPAT:%=.compat/%/.installed)
	$(BIN)/python compat/run.py

.compat/%/.installed: compat/requirements-%.txt
	rm -rf .compat/$*
	$(PYTHON) -m venv .compat/$*
	.compat/$*/bin/python -m pip install --quiet -r $<
	touch $@

clean:
	rm -rf $(VENV) .compat .pytest_cache .ruff_cache dist build
