# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs groundgraph and runs the i2cr demo (cpu profile)
#   make test   installs the test dependencies and runs the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast lint install system-deps check-robustness

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# llama.cpp compiled for the build machine's CPU crashed elsewhere (AMX path): build it portable
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet --no-cache-dir -c constraints.txt llama-cpp-python==0.3.36
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,train]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/groundgraph demo

# Debian packages some tests need: tesseract (OCR backend) and chromium (HTML trace test)
system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      tesseract-ocr tesseract-ocr-eng chromium fonts-dejavu-core >/dev/null; \
	  else echo "install tesseract-ocr and chromium (apt) for the tests that use them"; fi; fi

lint: install
	$(BIN)/ruff check agents tools graphs tests benchmarks
	$(BIN)/mypy agents tools graphs

test: install system-deps
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

# fuzzed inputs, injections, paths, kill -9 + resume, concurrency, model failures; prints the figures
# and writes them to reports/robustness.json
check-robustness: install
	$(BIN)/python -m pytest -m robustness -q -s
