# Two commands on a fresh machine: `make run` and `make test`. Both install what is missing first.
# What is installed depends on the target: the service alone (`make run`), plus tests and lint
# (`make test`, `make lint`), plus the benchmark-only packages (`make bench`, `make soak`).
SHELL := /bin/bash
PY := .venv/bin/python
# The service: speech synthesis.
APT_RUN := espeak-ng libespeak-ng1
# Tests and the microphone harness: headless Chromium with its driver and a Korean font, PortAudio.
APT_DEV := chromium chromium-driver fonts-nanum libportaudio2 postgresql

.PHONY: install install-dev install-bench run test test-browser serve-prod cluster cluster-stop lint bench soak

install: APT_PACKAGES := $(APT_RUN)
install: debian-packages .venv/.installed-run

install-dev: APT_PACKAGES := $(APT_RUN) $(APT_DEV)
install-dev: debian-packages .venv/.installed-dev

install-bench: APT_PACKAGES := $(APT_RUN) $(APT_DEV) nginx
install-bench: debian-packages .venv/.installed-bench

# Checked on every run (dpkg -s is cheap) so a machine that lost a package gets it back.
.PHONY: debian-packages
debian-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

.venv/.created:
	@test -x $(PY) || python3 -m venv .venv
	@touch $@

.venv/.installed-run: requirements.txt .venv/.created
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

.venv/.installed-dev: requirements-dev.txt requirements.txt .venv/.created
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@ .venv/.installed-run

.venv/.installed-bench: requirements-bench.txt requirements-dev.txt requirements.txt .venv/.created
	$(PY) -m pip install -q -r requirements-bench.txt
	@touch $@ .venv/.installed-dev .venv/.installed-run

# Demo data (published PINs and tokens) on loopback only, with readable logs for a person at a terminal.
run: install
	MINWON_DEMO=1 MINWON_LOG_FORMAT=text $(PY) app.py serve --host 127.0.0.1 --port 8080

serve-prod: install
	$(PY) app.py init
	.venv/bin/gunicorn --workers $$(nproc) --threads 8 --bind 0.0.0.0:8080 --timeout 60 'app:create_production_app()'

# A local PostgreSQL, two nodes with the demo data and nginx in front, on loopback (bench/cluster.py): the
# deployment the README describes, for a person to try. Runs until Ctrl-C or `make cluster-stop`.
cluster: APT_PACKAGES := $(APT_RUN) postgresql nginx
cluster: debian-packages .venv/.installed-run
	$(PY) -m bench.cluster

cluster-stop:
	$(PY) -m bench.cluster stop

test: install-dev
	$(PY) -m pytest

# The web console in headless Chromium (also part of `make test`).
test-browser: install-dev
	$(PY) -m pytest tests/console

# Style (ruff) and the layering rules (import-linter contracts in pyproject.toml).
lint: install-dev
	.venv/bin/ruff check .
	.venv/bin/lint-imports

# SQLite, PostgreSQL (a throwaway server) and two nodes behind nginx, side by side.
bench: install-bench
	$(PY) app.py bench --local-postgres

soak: install-bench
	$(PY) -m bench.soak
