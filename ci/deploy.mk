# Slow deployment test: the Plone/Zope buildout (zc.buildout +
# plone.recipe.zope2instance, pyruvate as a develop egg from this tree,
# examples/pyruvate.ini.in). A fresh venv gets zc.buildout, then buildout
# fetches Zope and its dependencies from PyPI (a few minutes).
# The other deployment tests (test_cli.py, test_paste.py, test_zope.py, ...) run in
# `make integration`.

.PHONY: test-buildout

# The build runs in a second make, after deps (see `run` in the Makefile).
test-buildout: deps
	$(MAKE) --no-print-directory all
	PYRUVATE_TEST_BUILDOUT=1 $(VENV_PYTHON) -m pytest tests/integration/test_buildout.py \
	    -v -rsx $(PYTEST_ARGS)
