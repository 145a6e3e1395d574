# make run   installs everything into .venv and starts the app on the offline default (http://localhost:7860)
# make test  installs everything (plus Debian's chromium for the browser test) and runs the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test chromium bench bench-sweep clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-offline.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-offline.txt
	touch $(STAMP)

run: install
	$(PY) app.py

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the browser test will be skipped"

test: install chromium
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m lopt_core.bench

bench-sweep: install
	$(PY) -m lopt_core.bench --sweep

clean:
	rm -rf $(VENV) .cache test-artifacts
