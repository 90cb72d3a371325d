# Two commands on a fresh machine (Python 3.11+, Java 17+, Maven; no Docker, no AWS account):
#   make run    the whole pipeline locally: Kafka, the PutEvents emulator, sample events, the forwarder
#   make test   lint, types and the whole test suite against a real Kafka and the emulator
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint unit component static integration bench chaos venv image containers test-containers stop clean

# A fresh venv (--clear) whenever pyproject.toml or constraints.txt change, so nothing stale lingers in it
# (such as the distribution's earlier name, `forwarder`).
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# make run FORMAT=avro (or protobuf, json_schema): the same pipeline with records through a schema registry.
FORMAT ?= json
run: venv
	PYTHON_VENV=$(VENV) FORMAT=$(FORMAT) scripts/run-local

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The test tiers, one directory each (make test runs them all, after lint):
unit: venv
	$(BIN)/python -m pytest tests/unit -q

component: venv
	$(BIN)/python -m pytest tests/component -q

static: venv
	$(BIN)/python -m pytest tests/static -q

integration: venv
	PYTHON=$(BIN)/python $(BIN)/python -m pytest tests/integration

test: lint
	PYTHON=$(BIN)/python $(BIN)/python -m pytest

# The container tier, after `make test` in CI and not part of it: podman (installed from Debian's packages
# where missing: needs root), the base images and the project's image (scripts/containers-local; the base
# images are built once and cached), then the compose stack, testcontainers through podman's Docker API, and
# promtool's tests of the alerts. Host ports: KAFKA_TEST_PORT + 3 to + 9.
containers: venv
	PYTHON=$(BIN)/python scripts/containers-local all

test-containers: containers
	PYTHON=$(BIN)/python $(BIN)/python -m pytest tests/containers

bench: venv
	bench/run

chaos: venv
	$(BIN)/python -m tests.chaos

# The image, labelled (org.opencontainers.image.version, .revision) with the package's version and the commit.
image: venv
	version=$$($(BIN)/python -c 'from forwarder import __version__; print(__version__)') \
	&& docker build --build-arg VERSION=$$version --build-arg REVISION=$$(git rev-parse HEAD) \
		-t forwarder:$$version -t forwarder:local .

stop:
	scripts/kafka-local stop

clean: stop
	rm -rf .local $(VENV)
