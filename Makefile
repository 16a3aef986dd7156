# Two commands do everything on a fresh machine: `make run` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup browser run test test-fast quality report ui clean serve

# torch 2.13.0 first (a CPU build from local disk here); then the project, whose torch range it satisfies.
# uv (from the registry, like any package) installs in about a third of pip's time; it reads no pip
# config, so it is given pip's find-links (where the local torch build lies). Where uv cannot be had or
# an install fails, pip does that install instead. --compile-bytecode: as pip, so first imports do not compile.
UV = $(VENV)/bin/uv pip install -q --compile-bytecode --python
FIND_LINKS = $(foreach d,$(PIP_FIND_LINKS) $(shell python3 -m pip config get global.find-links 2>/dev/null),--find-links $(d))
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q uv || echo "uv could not be installed: pip installs everything"
	$(UV) $(PY) $(FIND_LINKS) torch==2.13.0 || $(PY) -m pip install -q torch==2.13.0
	$(UV) $(PY) $(FIND_LINKS) -e ".[dev]" || $(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# Label Studio for the round-trip test, in its own environment (its pins clash with ours). If it
# cannot be installed (no registry), the test is skipped and says why; make test goes on.
LS_VENV := .venv-label-studio
$(LS_VENV)/.installed: $(STAMP)
	@(test -x $(LS_VENV)/bin/python || python3 -m venv $(LS_VENV)) && \
	  ($(UV) $(LS_VENV)/bin/python label-studio==1.23.2 || $(LS_VENV)/bin/pip install -q label-studio==1.23.2) && touch $@ || \
	  echo "Label Studio could not be installed: tests/integration/test_label_studio.py will be skipped"

# Headless Chromium for the web page's browser test (Debian's chromium and chromedriver, with apt, as
# root). Where it cannot be installed, the test is skipped and says why; make test goes on.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (test "$$(id -u)" = 0 && (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1))) || \
	  echo "chromium could not be installed: the browser test in tests/integration/test_serve.py will be skipped"

# Validate and split the data, train the default model (e5_tfidf), evaluate it, log it all to
# MLflow, save it to models/default/, then label a sample article with the predictor.
run: setup
	$(PY) -m security_topics.prepare
	$(PY) -m security_topics.train
	@echo "--- the predictor on data/sample_article.txt:"
	$(VENV)/bin/security-topics predict data/sample_article.txt --pretty
	@echo "--- and on the article the product was designed around (data/examples/seed-article.txt):"
	$(VENV)/bin/security-topics -q predict data/examples/seed-article.txt
	@echo "--- open the runs: make ui  (then http://127.0.0.1:5000)"

# Lint, the layer contract, the corpus quality gates (with their statistics printed), then the tests:
# one pytest-xdist worker per logical CPU, each on one thread (tests/conftest.py), a test module per
# worker at a time so that module fixtures are built once.
PYTEST := $(PY) -m pytest -n logical --dist loadscope
test: setup $(LS_VENV)/.installed browser
	$(VENV)/bin/ruff check src tests benchmarks experiments data/pools
	$(VENV)/bin/lint-imports
	$(PY) -m security_topics.quality hydra.run.dir=experiments/runs/quality
	$(PYTEST)

# The quick loop while developing: everything but the tests that train or convert models.
test-fast: setup
	$(PYTEST) -m "not slow"

quality: setup
	$(PY) -m security_topics.quality hydra.run.dir=experiments/runs/quality

# The comparison of runs, into experiments/runs/report.{md,csv} (git-ignored; the committed experiments/report
# is an earlier table that experiments/README.md cites, rewritten only by asking: --output experiments/report).
report: setup
	$(VENV)/bin/security-topics report

# The analysts' web page and JSON API on the default model (http://127.0.0.1:8000, API docs at /docs).
serve: setup
	$(VENV)/bin/security-topics serve --model models/default

# The MLflow UI on the project's store (http://127.0.0.1:5000).
ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///experiments/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf experiments/runs experiments/multiruns data/processed models/default models/pipeline
