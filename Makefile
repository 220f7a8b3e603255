# The two commands that matter: `make up` runs the platform, `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := mosquitto mosquitto-clients redis-server mariadb-server xz-utils libsqlite3-0 etcd-server containerd runc containernetworking-plugins iptables busybox-static umoci skopeo openssl curl golang-github-googleapis-gnostic-dev binutils

.PHONY: up down test lint typecheck pytest system-deps venv generate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	@# setuptools says an editable install may be shadowed by same-named folders: known, and noise.
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Installs the real peers the tests talk to (MQTT broker, Redis, MariaDB) when they are missing.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "missing system packages:$$missing (run as root or install them)"; fi; \
	fi
	@command -v kubectl >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubernetes-client; } || echo "warning: kubectl not found"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv system-deps
	$(BIN)/pytest -q -x --durations=15 $(PYTEST_ARGS)

test: system-deps venv lint typecheck pytest

# Regenerates every generated file (docs/development.md, "Generated code"); `python -m codegen --check` only compares.
generate: venv
	$(BIN)/python -m codegen

# The platform on this machine; UP_ARGS=--detach returns once it is ready (then `make down`).
up: venv
	@dpkg -s mosquitto >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto mosquitto-clients || echo "mosquitto not installed; kubeshore up will say what it needs"; }
	@command -v kubectl >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubernetes-client; } || echo "kubectl not installed; kubeshore up will say what it needs"
	$(BIN)/kubeshore up $(UP_ARGS)

down: venv
	$(BIN)/kubeshore down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
