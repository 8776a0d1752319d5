# vsync: developer entry points. On a fresh machine: `make demo`, then `make test`.
#
#   make venv         .venv with vsync installed editable, plus the test extras
#   make demo         a two-minute scripted tour in a temporary folder
#   make test         make lint, then the whole test suite (installs sshd, ssh, git, tmux if missing)
#   make lint         ruff check + ruff format --check + mypy --strict on vsync/
#   make reliability  the crash, fault and load tests, writing docs/reliability.md from their figures
#   make bench        benchmarks vs git, rsync, restic (updates docs/benchmarks.md, docs/format.md)
#   make bench-quick  the same scaled down, a few minutes (results under bench/results/ only)
#   make clean        caches, build output, benchmark data; `make distclean` also .venv

SHELL := /bin/bash
# Some environments set PYTHONDONTWRITEBYTECODE: every vsync process the tests and
# benchmarks start would then compile vsync's modules again (about 0.13 s each, and
# the suite starts thousands). Let Python write its bytecode cache once.
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint reliability bench bench-quick bench-deps system-deps clean distclean

venv: $(STAMP)

# pip's output is kept in a log and shown only if the install fails. The editable
# install is a plain path in a .pth file ("compat"): the default installs an import
# hook whose loading costs every vsync process 10-15 ms of start-up.
$(STAMP): pyproject.toml setup.py vsync/model/_lstat_match.c
	@echo "installing vsync and its test tools into $(VENV) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# vsync/model/_lstat_match.c is built by the install: a C compiler and Python's headers
	@missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	$(PY) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| missing="$$missing python3-dev"; \
	bash scripts/apt-install-missing.sh $$missing
	@log=$$(mktemp); \
	if ! $(PY) -m pip install --disable-pip-version-check -e '.[test]' \
			--config-settings editable_mode=compat >"$$log" 2>&1; then \
		cat "$$log"; rm -f "$$log"; echo "make: pip install failed"; exit 1; \
	fi; rm -f "$$log"
	@touch $(STAMP)

demo: venv
	@scripts/demo.sh

# System programs the tests drive for real: an OpenSSH server and client on
# 127.0.0.1, git (compatibility checks) and tmux (terminal UI tests).
# apt-get runs only when something is missing; sudo only when not root.
system-deps:
	@missing=""; \
	{ command -v sshd || test -x /usr/sbin/sshd; } >/dev/null 2>&1 || missing="$$missing openssh-server"; \
	{ command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	bash scripts/apt-install-missing.sh $$missing

# pytest exits 5 when it collects no test: that is not a failure of the suite.
# CI runs `make test` alone (.ci/run), so the checks of `make lint` run first here.
# Two workers (pytest-xdist), one per core: most of a test is a vsync or sshd process
# starting or waiting, so one worker leaves a core idle (41 min serial, about 20 with two).
# Each worker starts its own sshd on a free port; tests share nothing else.
TEST_WORKERS ?= 2
test: venv system-deps lint
	@$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=25; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The crash, fault and load tests also run in `make test`; here they write their
# figures, and docs/reliability.md is made from them (one run, one commit).
RELIABILITY_TESTS = tests/test_crash_matrix.py tests/test_crash.py tests/test_load.py \
	tests/test_stall.py tests/test_disk_full.py tests/test_file_faults.py tests/test_locks.py \
	tests/test_incoming.py tests/test_sync.py

reliability: venv system-deps
	@rm -rf build/reliability
	@VSYNC_RELIABILITY_OUT=$(CURDIR)/build/reliability $(PY) -m pytest -q -n $(TEST_WORKERS) \
		--junitxml=$(CURDIR)/build/reliability/junit.xml $(RELIABILITY_TESTS)
	@$(PY) scripts/reliability_report.py build/reliability docs/reliability.md

lint: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy --strict vsync

# The peers the benchmarks measure vsync against (issues 6, 13): git, rsync, restic, syncthing
# (0.14+: compression), GNU time (/usr/bin/time -v for peak RSS) and an OpenSSH
# server and client on 127.0.0.1; mkfs.xfs for the reflink file system image of the
# goback group (issue 14). apt-get only when something is missing.
bench-deps:
	@missing=""; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	command -v rsync >/dev/null 2>&1 || missing="$$missing rsync"; \
	command -v restic >/dev/null 2>&1 || missing="$$missing restic"; \
	command -v syncthing >/dev/null 2>&1 || missing="$$missing syncthing"; \
	command -v mkfs.xfs >/dev/null 2>&1 || test -x /usr/sbin/mkfs.xfs || missing="$$missing xfsprogs"; \
	test -x /usr/bin/time || missing="$$missing time"; \
	{ command -v sshd || test -x /usr/sbin/sshd; } >/dev/null 2>&1 || missing="$$missing openssh-server"; \
	{ command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || missing="$$missing openssh-client"; \
	bash scripts/apt-install-missing.sh $$missing

# matplotlib (the throughput plot) comes from the `bench` extra, for `make bench` only.
$(VENV)/.bench-installed: $(STAMP) pyproject.toml
	@log=$$(mktemp); \
	if ! $(PY) -m pip install --disable-pip-version-check -e '.[test,bench]' \
			--config-settings editable_mode=compat >"$$log" 2>&1; then \
		cat "$$log"; rm -f "$$log"; echo "make: pip install failed"; exit 1; \
	fi; rm -f "$$log"
	@touch $@

bench: venv bench-deps $(VENV)/.bench-installed
	@$(PY) bench/run.py

bench-quick: venv bench-deps
	@$(PY) bench/run.py --quick

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis bench/data bench/results
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
