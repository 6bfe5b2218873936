# BCL Pipeline. Every target creates .venv and installs the pinned dependencies on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo lint format bench soak schemas clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make test: the whole suite against a real broker and Postgres started by the fixtures, in
## one test process per core (pytest-xdist; each process starts its own services).
test: $(STAMP)
	$(BIN)/pytest -q -n 2

## make demo: start everything, publish a sample stream, show the journal, stop everything.
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash infra/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy schemas pipeline consumers

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## make bench: throughput figures, as ratios to the raw Kafka consume and Postgres COPY rates.
bench: $(STAMP)
	$(BIN)/python tests/bench/run.py

## make soak: 200,000 events published while 52 SIGKILLs hit workers, broker, store and Postgres.
soak: $(STAMP)
	$(BIN)/python tests/soak/crash.py

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

clean:
	-$(BIN)/bcl down
	rm -rf .bcl
