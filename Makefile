# Every target creates .venv on first use, so a fresh clone needs only python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 9000
DATA ?= data
METRICS ?=
S3TESTS_DIR ?=

.PHONY: run test test-large test-clients lint format bench screenshots clean s3-tests

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "s3lite needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# make run [PORT=9000] [DATA=data] [METRICS=127.0.0.1:9090]
run: $(STAMP)
	$(BIN)/s3lite serve --listen 127.0.0.1:$(PORT) --data-dir $(DATA) $(if $(METRICS),--metrics-listen $(METRICS))

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not large"

# Real S3 clients (boto3, aws cli, s3cmd, rclone) against a gateway and node processes;
# also part of `make test`. rclone comes from Debian's packages (.ci/run installs it).
test-clients: $(STAMP)
	$(BIN)/python -m pytest -q -m clients --durations=0

test-large: $(STAMP)
	$(BIN)/python -m pytest -q -m large -s

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# ceph/s3-tests (core, extended) against a fresh `s3lite serve`: scripts/s3-tests.sh.
# S3TESTS_DIR: where the suite's run.sh is (default ../shared/s3-tests, then
# /work/shared/s3-tests); its Python deps go to a venv under .venv.
s3-tests: $(STAMP)
	S3TESTS_DIR=$(S3TESTS_DIR) bash scripts/s3-tests.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks
	$(BIN)/python -m benchmarks healing

# The web console's pictures in docs/ (needs Debian's chromium and chromium-driver)
screenshots: $(STAMP)
	$(BIN)/python -m benchmarks screenshots

clean:
	rm -rf $(VENV) .bench .mypy_cache .ruff_cache .hypothesis .s3-tests
