# `make demo` and `make test` set everything up from nothing: venv, pinned CPU torch first, the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.neurank-installed
TORCH := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test unit lint redis rabbitmq browser venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/neurank demo

redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no

# The ingest tests run on both brokers: RabbitMQ on 127.0.0.1:5672 (guest/guest), started if installed and down.
rabbitmq:
	@rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { rabbitmq-server -detached && for i in $$(seq 30); do \
		sleep 2; rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; done; } ; \
		rabbitmq-diagnostics -q ping >/dev/null 2>&1 || \
		echo "RabbitMQ is not reachable on 127.0.0.1:5672: the amqp ingest tests will fail"

# The search page's test drives Debian's chromium; install it where apt can, else that test says it skipped.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		chromium chromium-driver >/dev/null; } || \
		echo "chromium could not be installed: tests/serve/test_page.py will be skipped"

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

unit: venv lint
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

test: venv redis rabbitmq browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
