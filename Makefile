# Rijkschat: `make up` runs the pilot on this machine, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
PYTEST_ARGS ?=
CODE   := server_bridge archiver_bot client_cli

.PHONY: up test install lint services browser fonts clean

# (Re)install when the venv is missing or pyproject/constraints changed since the last install.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP) fonts
	$(BIN)/rijkschat-server up $(ARGS)

# The services the tests talk to: the machine's PostgreSQL (started if it is down).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

# The browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# download cannot work on these machines); install it once when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium for the browser tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# The Woo publication PDF embeds DejaVu Sans from Debian's fonts-dejavu-core.
fonts:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || { \
	  echo "installing fonts-dejavu-core for the Woo publication PDF"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y fonts-dejavu-core; }

lint: $(STAMP)
	$(BIN)/ruff check $(CODE) tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) services browser fonts lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
