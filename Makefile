# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv themselves on a fresh Debian machine with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz bench chaos clean browser

$(BIN)/python:
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "python venv support missing: installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# The browser tests drive Debian's Chromium through its chromedriver (no downloads at run time).
browser:
	@test -x /usr/bin/chromedriver -a -x /usr/bin/chromium || { \
	  echo "installing chromium and chromium-driver for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

demo: $(STAMP)
	$(BIN)/bridge demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The property-based tests (protocol decoders, server API input, store codec, clock) at 20,000
# examples each instead of 200.
FUZZ_TESTS := tests/dexcom/test_properties.py tests/dexcom/test_clock.py tests/server/test_badinput.py tests/store/test_codec.py
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 $(FUZZ_TESTS)

# The chaos test at ten times the size `make test` runs (about 17 minutes on 2 cores).
chaos: $(STAMP)
	CHAOS_SCALE=10 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/chaos

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
