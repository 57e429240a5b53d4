# Two commands do everything: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The Claude Code CLI versions the tests run against: the newest (default) and the oldest still tested.
# `make test CLAUDE_CODE_VERSION=2.1.197` runs the suite against another one; each version has its own prefix.
CLAUDE_CODE_VERSION := 2.1.332
CLAUDE_CODE_OLDEST_TESTED := 2.1.197
CLI_PREFIX := .tools/claude-code-$(CLAUDE_CODE_VERSION)
CLI_PACKAGE := $(CLI_PREFIX)/node_modules/@anthropic-ai/claude-code/package.json
# The binary npm installed for this machine (linux-x64, darwin-arm64, …), read from the packages' own manifests.
CLI_FIND := $(PYTHON) tests/cli_install.py $(CLI_PREFIX)

.PHONY: run reload test test-fast test-oldest test-oldest-cli faults bench lint doctor console cli install-service uninstall-service clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@$(PY) bot.py

# SIGHUP to the bot `make run` started (the pid its instance lock records): it reloads its code, keeping every turn.
reload:
	@dir="$${SESSIONS_DIR:-$$(sed -n 's/^SESSIONS_DIR=//p' .env 2>/dev/null | tail -n1)}"; \
	kill -HUP "$$(head -n1 "$${dir:-sessions}/.bot.lock")"

doctor: $(VENV)/.installed
	@$(PY) bot.py doctor

console: $(VENV)/.installed
	@$(PY) bot.py console

# The Claude Code CLI, pinned, installed into a git-ignored project-local directory per version for the tests.
$(CLI_PACKAGE):
	mkdir -p $(CLI_PREFIX)
	npm install --prefix $(CLI_PREFIX) --no-save --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	bin=$$($(CLI_FIND)) && "$$bin" --version

cli: $(CLI_PACKAGE)

# The suite runs in TEST_WORKERS processes (pytest-xdist; 0 runs it in this one). Most tests wait (the CLI starting,
# timers, a group's pacing) rather than compute, so 4 workers pay even on 2 cores. Tests go out one at a time in the
# order tests/conftest.py gives (longest first), so no worker is left with a queue of long ones at the end.
TEST_WORKERS ?= 4
PARALLEL := -n $(TEST_WORKERS) --maxschedchunk 1

test: $(VENV)/.installed-test $(CLI_PACKAGE)
	bin=$$($(CLI_FIND)) && CLAUDE_TEST_BIN=$$bin $(PY) -m pytest -q $(PARALLEL) $(PYTEST_ARGS)

# The fast tier: every test marked `fast` (in-process: commands, sessions with a fake process and clock, the outbox and
# the turn view with a fake clock and bot, the console, rendering, parsing, the layers), about 430 tests in seconds.
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -m fast $(PYTEST_ARGS)

# The same suite against the oldest CLI version still supported.
test-oldest:
	$(MAKE) test CLAUDE_CODE_VERSION=$(CLAUDE_CODE_OLDEST_TESTED)

# CI's share of that: the real-CLI tests of what depends on the CLI's version (its process and protocol, sessions,
# prompts, Claude's own turns and crons, doctor); the Telegram side is the same on every version. Its time is in the README.
OLDEST_CLI_TESTS := tests/test_claude_subprocess_real.py tests/test_session_manager_real.py \
	tests/test_walking_skeleton.py tests/test_asks_e2e.py tests/test_bot_claude_turns.py tests/test_doctor.py \
	tests/test_claude_schedules_e2e.py

test-oldest-cli:
	$(MAKE) test CLAUDE_CODE_VERSION=$(CLAUDE_CODE_OLDEST_TESTED) PYTEST_ARGS="-m real_cli $(OLDEST_CLI_TESTS) $(PYTEST_ARGS)"

# Speed and memory figures (real CLI, fake Messages API, fake Bot API with a flood limit) → docs/benchmarks.md.
bench: $(VENV)/.installed-test $(CLI_PACKAGE)
	bin=$$($(CLI_FIND)) && CLAUDE_TEST_BIN=$$bin $(PY) bench/benchmark.py docs/benchmarks.md

# The fault & abuse suite (tests/faults/, marker `faults`, left out of `make test`), in parallel like `make test`;
# writes docs/reliability.md from the rows of every worker (tests/faults/conftest.py).
faults: $(VENV)/.installed-test $(CLI_PACKAGE)
	bin=$$($(CLI_FIND)) && CLAUDE_TEST_BIN=$$bin $(PY) -m pytest -q $(PARALLEL) -m faults tests/faults $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

SERVICE_DIR := $(HOME)/.config/systemd/user

install-service: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ]; then echo "Refusing to install the service for root: run it as your normal user." >&2; exit 1; fi
	mkdir -p $(SERVICE_DIR)
	sed -e 's|@PROJECT_DIR@|$(CURDIR)|g' -e 's|@HOME@|$(HOME)|g' telegram-bot.service > $(SERVICE_DIR)/telegram-bot.service
	systemctl --user daemon-reload
	systemctl --user enable --now telegram-bot.service
	@echo "Installed and started. To keep it running while you are logged out: loginctl enable-linger $$USER"
	@echo "Logs: journalctl --user -u telegram-bot -f"

uninstall-service:
	-systemctl --user disable --now telegram-bot.service
	rm -f $(SERVICE_DIR)/telegram-bot.service
	systemctl --user daemon-reload

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
