# The two commands of the README:  `make book`  and  `make test`.
# Each creates .venv if missing and installs the pinned set once (re-runs skip the install).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MATHJAX := book/_static/mathjax/tex-chtml.js
PROFILE ?= demo
# chapters executed at a time (the training runs are independent; see `tausynth book run --help`)
JOBS ?= 2

.PHONY: book test install clean-book

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[book,dev,prepare]'
	@touch $(STAMP)

install: $(STAMP) $(MATHJAX)

# MathJax 3 served from the book itself, so the rendered HTML needs no CDN (fetched once, at install).
$(MATHJAX):
	@bash tools/fetch_mathjax.sh book/_static/mathjax

test: $(STAMP) $(MATHJAX)
	@bash tools/ensure_chromium.sh
	$(PY) -m pytest -q

book: $(STAMP) $(MATHJAX)
	$(VENV)/bin/tausynth book run --profile $(PROFILE) --jobs $(JOBS)
	$(VENV)/bin/tausynth book build

clean-book:
	rm -rf _build
