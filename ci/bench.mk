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
