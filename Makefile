# The front door: `make demo` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint bench demo clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/mypy monitor

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

demo: $(STAMP)
	$(BIN)/python -m monitor demo

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache

# On the Pi, as root: the daemon as a hardened systemd service (see systemd/install.sh).
# uninstall keeps /etc/monitor and /var/lib/monitor.
.PHONY: install uninstall
install:
	bash systemd/install.sh install

uninstall:
	bash systemd/install.sh uninstall

# The service under a real systemd (PID 1 of a Debian bookworm container) and the MQTT
# discovery in front of a real Home Assistant Core. Root only: they use debootstrap,
# systemd-nspawn and nsenter, and cache their roots in /var/cache/monitor-ci (see
# tests/container/roots.sh). The normal `make test` skips them.
.PHONY: test-systemd test-homeassistant
test-systemd: $(STAMP)
	MONITOR_CONTAINER_TESTS=systemd $(BIN)/python -m pytest -v tests/container/test_systemd_service.py

test-homeassistant: $(STAMP)
	MONITOR_CONTAINER_TESTS=homeassistant $(BIN)/python -m pytest -v tests/container/test_homeassistant.py
