# Every supported CPython (3.10 to 3.13): build, Check suite and integration
# suite per version, each in build/pythons/X.Y (ci/pythons.sh). PYTHONS="3.12"
# picks versions; PYTEST_ARGS is passed on to pytest.

.PHONY: test-pythons

test-pythons:
	MAKE="$(MAKE)" PYTHONS="$(PYTHONS)" PYTEST_ARGS="$(PYTEST_ARGS)" bash ci/pythons.sh
