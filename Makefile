# skprune — `make demo` and `make test` set themselves up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The pinned CPU build: a plain `pip install torch` would pull GBs of CUDA wheels.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-oldest bench docs lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) -m skprune demo

test: setup
	SCIPY_ARRAY_API=1 $(PY) -m pytest -q

# The fast suite at the oldest versions pyproject.toml allows (requirements-oldest.txt),
# in a venv of its own. On Linux, PyPI's torch is a CUDA build (about 3 GB with its
# libraries); OLDEST_PIP="--extra-index-url <an index of CPU builds>" takes the CPU
# build of the same release instead, where such an index is reachable.
OLDEST       ?= .venv-oldest
OLDEST_PIP   ?=
OLDEST_STAMP := $(OLDEST)/.installed

$(OLDEST_STAMP): pyproject.toml requirements-oldest.txt
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q $(OLDEST_PIP) -c requirements-oldest.txt -e ".[test]"
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	SKPRUNE_AT_FLOORS=1 SCIPY_ARRAY_API=1 $(OLDEST)/bin/python -m pytest -q -p no:cacheprovider

bench: setup
	SCIPY_ARRAY_API=1 $(PY) -m pytest -q -m slow --override-ini="addopts=" -ra
	$(PY) examples/benchmarks/bench_overhead.py
	$(PY) examples/benchmarks/reproduce_reiners_table2.py --out docs/reproductions/reiners_table2.rst
	$(PY) examples/benchmarks/bench_multiobjective.py --plot docs/_static/multiobjective_mnist.png
	$(PY) examples/benchmarks/bench_pruning_family.py
	$(PY) examples/benchmarks/compare_regularizers.py --plot docs/_static/compare_regularizers.png
	$(PY) examples/benchmarks/knee_search_mnist.py --plot docs/_static/knee_search_mnist.png
	$(PY) examples/benchmarks/controlled_density.py --plots docs/_static
	$(PY) examples/benchmarks/bench_deploy.py --plot docs/_static/deploy_latency.png
	$(PY) examples/benchmarks/bench_cost.py --plot docs/_static/choosing_by_cost.png
	$(PY) examples/benchmarks/bench_choose_by_cost.py
	$(PY) examples/benchmarks/bench_vectorize.py
	$(PY) examples/benchmarks/bench_vectorize.py --regression
	$(PY) examples/benchmarks/bench_engine.py
	$(PY) examples/benchmarks/bench_stacked_parts.py
	$(PY) examples/benchmarks/bench_gates_single_fit.py
	$(PY) examples/benchmarks/bench_fused_step.py
	$(PY) examples/benchmarks/bench_threads.py --threads 2
	$(PY) examples/benchmarks/bench_sparse_input.py
	$(PY) examples/benchmarks/bench_feature_selection.py
	$(PY) examples/benchmarks/bench_cuda.py

docs: setup
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

lint: setup
	$(PY) -m ruff check skprune tests examples
	$(PY) -m ruff format --check skprune tests examples

format: setup
	$(PY) -m ruff format skprune tests examples
	$(PY) -m ruff check --fix skprune tests examples

clean:
	rm -rf $(VENV) $(OLDEST) docs/_build docs/auto_examples docs/gen_modules .pytest_cache

# The docs as a reader offline gets them: build with -W, run every Python block of the README and
# the pages (tests/test_docs.py, slow pages too; >>> blocks as doctests), then open three pages in
# headless Chromium with the network blocked; fails on raw TeX, an untypeset formula, a broken
# image or a resource from the network (docs/check_pages.py; screenshots in docs/_build/check).
# Installs Debian's chromium if missing (as root).
.PHONY: docs-check
docs-check: setup
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	rm -rf docs/_build/html
	SCIPY_ARRAY_API=1 $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	SCIPY_ARRAY_API=1 $(PY) -m pytest -v tests/test_docs.py docs/extending.rst docs/user_guide \
		--override-ini="addopts=-ra --doctest-glob=*.rst" \
		-o doctest_optionflags="ELLIPSIS NORMALIZE_WHITESPACE"
	$(PY) docs/check_pages.py docs/_build/html --out docs/_build/check
