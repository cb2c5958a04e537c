# Two commands on a fresh machine: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PY := .venv/bin/python
APT_PACKAGES := espeak-ng libespeak-ng1 libportaudio2 chromium chromium-driver fonts-nanum
STAMP := .venv/.installed

.PHONY: install debian-packages run test test-browser serve-prod lint bench soak

install: debian-packages $(STAMP)

# Checked on every run (dpkg -s is cheap) so a machine that lost a package gets it back.
debian-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q -r requirements.txt
	@touch $(STAMP)

run: install
	$(PY) app.py serve --host 127.0.0.1 --port 8080

serve-prod: install
	.venv/bin/gunicorn --workers $$(nproc) --threads 8 --bind 0.0.0.0:8080 --timeout 60 'app:create_app()'

test: install
	$(PY) -m pytest

# The web console in headless Chromium (also part of `make test`).
test-browser: install
	$(PY) -m pytest tests/console

bench: install
	$(PY) app.py bench

soak: install
	$(PY) -m bench.soak

lint: install
	.venv/bin/ruff check .
