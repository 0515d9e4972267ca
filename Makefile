# The two commands of the quick start: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env demo test test-fast lint bench bench-full clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: env
	$(BIN)/batchinfer demo

test: env
	$(BIN)/python -m pytest -q --durations=30

test-fast: env
	$(BIN)/python -m pytest -q -m "not slow"

lint: env
	$(BIN)/ruff check batchinfer tests benchmarks jobs
	$(BIN)/ruff format --check batchinfer tests benchmarks jobs

bench: env
	$(BIN)/python benchmarks/run.py --rows 200000 --partitions 4 --models fp32 \
		--scenarios batchinfer,batchinfer_spark,predict_batch_udf,map_in_pandas,checks_overhead

bench-full: env
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf demo/output build dist *.egg-info
