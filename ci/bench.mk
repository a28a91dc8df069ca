# make bench: pyruvate against its peers (the Rust Pyruvate, bjoern, granian,
# waitress, gunicorn, uWSGI, nginx) under wrk; prints a markdown table and
# writes tests/bench/RESULTS.md. The peers go into build/bench/ virtualenvs.
#   make bench BENCH_ARGS="--quick"                    about a minute
#   make bench BENCH_ARGS="--servers pyruvate,bjoern --apps hello,sleep"
#   $(PYTHON) tests/bench/bench.py --help              every option
BENCH_ARGS ?=

.PHONY: bench
bench: all
	$(PYTHON) tests/bench/bench.py $(BENCH_ARGS)

# make soak: one server under mixed, verified and hostile traffic for
# SOAK_SECONDS, then requests and errors by kind and RSS at start and end.
SOAK_SECONDS ?= 600
.PHONY: soak
soak: all
	$(PYTHON) tests/bench/soak.py --seconds $(SOAK_SECONDS)

# make bench-zope: a real Zope (/) and a real Plone 6 site (front page, a
# 50-document listing, a plone.restapi edit) served through PasteDeploy by
# pyruvate, waitress, the Rust Pyruvate and granian at 2 and 4 threads under
# wrk at 1, 4 and 16 connections; writes tests/bench/RESULTS-zope.md. The
# virtualenvs, instances and the site go to build/bench-zope/ (a few minutes
# the first time; pinned in tests/bench/requirements-plone.txt and
# ci/requirements-test-deploy.txt). The full run takes about 15 minutes.
#   make bench-zope BENCH_ZOPE_ARGS="--quick"           smoke test, ~1.5 min
#   $(PYTHON) tests/bench/bench_zope.py --help          every option
BENCH_ZOPE_ARGS ?=

.PHONY: bench-zope
bench-zope:
	$(PYTHON) tests/bench/bench_zope.py $(BENCH_ZOPE_ARGS)
