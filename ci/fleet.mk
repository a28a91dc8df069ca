# make test-fleet: a Plone/Zope fleet on this machine (a ZEO server, three
# Zope instances served by pyruvate through PasteDeploy, nginx balancing over
# them; the files of examples/fleet/) under a bounded load through nginx: a
# rolling restart fails no request and loses or duplicates no write, kill -9
# of one instance fails no GET. Prints a transcript. About a minute; the
# timeout bounds it in CI.
#
# make bench-fleet: req/s and p99 of a ~10 ms page through nginx with 1, 2
# and 3 instances under wrk (FLEET_BENCH_SECONDS per instance count, default
# 10), and the CPU limit of this machine. About a minute.
FLEET_TIMEOUT ?= 600

.PHONY: test-fleet bench-fleet

# The build runs in a second make, after deps (see `run` in the Makefile).
test-fleet: deps
	$(MAKE) --no-print-directory all
	PYRUVATE_TEST_FLEET=1 timeout $(FLEET_TIMEOUT) $(VENV_PYTHON) -m pytest \
	    tests/integration/test_fleet.py -v -s -rsx -k rolling $(PYTEST_ARGS)

bench-fleet: all
	PYRUVATE_BENCH_FLEET=1 timeout $(FLEET_TIMEOUT) $(VENV_PYTHON) -m pytest \
	    tests/integration/test_fleet.py -q -s -rsx -k throughput $(PYTEST_ARGS)
