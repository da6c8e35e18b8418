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
