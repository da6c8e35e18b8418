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

# Real picamera2 on libcamera's virtual camera (tests/hardware), and the unit tests on arm64 under
# qemu-user-static, each in a Debian root kept in MONITOR_ROOTS and rebuilt when absent or when its
# script changed (as root; needs mmdebstrap, and arch-test and qemu-user-static for arm64). See README.md.
MONITOR_ROOTS ?= /var/cache/monitor-test-roots
# What test-arm64 runs: the comparator (with the x86-vs-arm64 score check), config, sources, detector
# and mask tests. ARM64_TESTS=tests (make test-arm64-full) runs the whole suite.
ARM64_TESTS ?= tests/test_similarity.py tests/test_config.py tests/test_sources.py tests/test_detector.py \
	tests/test_mask.py
.PHONY: test-picamera2 test-arm64 test-arm64-full
test-picamera2:
	bash ci/roots/build-picamera2.sh $(MONITOR_ROOTS)/picamera2
	bash ci/roots/enter.sh $(MONITOR_ROOTS)/picamera2 . sh tests/hardware/harness/run-tests.sh

test-arm64: $(STAMP)
	bash ci/roots/build-arm64.sh $(MONITOR_ROOTS)/arm64
	@mkdir -p build
	$(BIN)/python -m tests.score_cases build/scores-$$(uname -m).json
	bash ci/roots/enter.sh $(MONITOR_ROOTS)/arm64 . env MONITOR_SCORES_FROM=build/scores-$$(uname -m).json \
		python -m pytest -p no:cacheprovider $(ARM64_TESTS)

test-arm64-full:
	$(MAKE) test-arm64 ARM64_TESTS=tests
