# pyruvate: build the C extension in place, run the tests, serve the example.
# `make help` lists the targets.

PYTHON ?= python3
VENV_PYTHON := .venv/bin/python
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INCLUDE ?= /usr/share/include/llhttp
CC ?= gcc
VARIANT ?= release
ADDRESS ?= 127.0.0.1:7878
WORKERS ?= 4
# V=1 shows the full compiler command lines.
Q := $(if $(V),,@)

PY_INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT_SUFFIX := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

CORE_SOURCES := buf listen acceptor pool room conn request http_status response log systemd proxy idle fdlimit park syntax wakeup pollset metrics registry handoff
PYTHON_SOURCES := module server signals worker wsgi environ start_response send input filewrapper
PYTHON_SOURCES += options stats
LLHTTP_SOURCES := llhttp api http

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -fPIC -pthread -fvisibility=hidden \
                 -Iinclude -I$(LLHTTP_INCLUDE) -MMD -MP
CFLAGS_release := -O2 -g
CFLAGS_debug := -O0 -g
CFLAGS_asan := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined
CFLAGS_coverage := -O0 -g --coverage
CFLAGS_tsan := -O1 -g -fsanitize=thread
CFLAGS_gcc-check := -O2
CFLAGS_clang-check := -O2
VARIANT_CFLAGS := $(CFLAGS_$(VARIANT))
LDFLAGS_VARIANT := $(filter -f% --coverage,$(VARIANT_CFLAGS))

BUILD := build/$(VARIANT)
EXTENSION := pyruvate/_pyruvate$(EXT_SUFFIX)
CORE_OBJECTS := $(CORE_SOURCES:%=$(BUILD)/%.o)
PYTHON_OBJECTS := $(PYTHON_SOURCES:%=$(BUILD)/%.o)
LLHTTP_OBJECTS := $(LLHTTP_SOURCES:%=$(BUILD)/llhttp/%.o)

UNIT_SOURCES := $(wildcard tests/unit/*.c)
UNIT_OBJECTS := $(UNIT_SOURCES:tests/unit/%.c=$(BUILD)/unit/%.o)
UNIT_BINARY := $(BUILD)/check_pyruvate
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

.PHONY: all help deps run test unit unit-binary integration lint format build-gcc build-clang \
        coverage test-asan clean
all: require-build $(EXTENSION)

help:
	@echo "make deps         install Debian packages (as root, ci/packages.txt) and .venv test tools"
	@echo "make              build $(EXTENSION) in place (VARIANT=release|debug|asan|coverage)"
	@echo "make run          serve examples/hello.py on http://$(ADDRESS)/"
	@echo "make test         unit tests (Check) and integration tests (pytest)"
	@echo "make unit         Check unit tests only (SUITE=request to pick one)"
	@echo "make integration  pytest integration tests only (PYTEST_ARGS=tests/integration/test_x.py or -k NAME)"
	@echo "make lint         clang-format, cppcheck, banned functions, Python syntax"
	@echo "make format       reformat the C sources with clang-format"
	@echo "make build-gcc    warning-free build with gcc (build-clang: with clang)"
	@echo "make coverage     coverage build, unit + integration tests, gcovr report in coverage/"
	@echo "make test-asan    integration tests against an ASan+UBSan build"
	@echo "make bench        benchmark against the peers (tests/bench/RESULTS.md)"
	@echo "make bench-zope   Zope and Plone under pyruvate and peers (tests/bench/RESULTS-zope.md)"
	@echo "make test-fleet   ZEO + 3 Zope instances behind nginx: rolling restart, kill -9 under load"
	@echo "make bench-fleet  req/s of 1, 2, 3 Zope instances behind nginx"
	@echo "make clean        remove build products"

deps:
	PYTHON=$(PYTHON) bash ci/install-deps.sh

# Checks the tools of a stage and names the Debian package of each missing
# one (ci/packages.txt), before the stage fails somewhere deep.
require-%:
	@PYTHON=$(PYTHON) LLHTTP_DIR=$(LLHTTP_DIR) bash ci/require.sh $*

# The extension is rebuilt when the variant changes, as each variant has its
# own object directory and the .so is relinked from it.
$(EXTENSION): $(CORE_OBJECTS) $(PYTHON_OBJECTS) $(LLHTTP_OBJECTS) $(BUILD)/.variant
	@echo "  LINK  $@ ($(VARIANT))"
	$(Q)$(CC) -shared -pthread $(LDFLAGS_VARIANT) -o $@ $(CORE_OBJECTS) $(PYTHON_OBJECTS) $(LLHTTP_OBJECTS)

# Objects that include Python.h are rebuilt when PYTHON names another
# version: its headers (and ABI) differ, the object names do not.
PYTHON_STAMP := $(BUILD)/.python-$(notdir $(PY_INCLUDE))
$(PYTHON_OBJECTS): $(PYTHON_STAMP)
$(PYTHON_STAMP):
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/.python-*
	@touch $@

$(BUILD)/.variant:
	@mkdir -p $(BUILD)
	@rm -f build/*/.variant
	@touch $@

# module.c exports the variant as _pyruvate.BUILD_VARIANT (benchmarks check it).
$(BUILD)/module.o: CFLAGS_COMMON += -DPYRUVATE_VARIANT='"$(VARIANT)"'

$(BUILD)/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC    $< ($(VARIANT))"
	$(Q)$(CC) $(CFLAGS_COMMON) $(WARNINGS) $(VARIANT_CFLAGS) -I$(PY_INCLUDE) -c $< -o $@

# llhttp is generated code from Debian's node-llhttp: compiled as it is,
# without our warning flags, and never copied into this repository.
$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	@echo "  CC    $< ($(VARIANT))"
	$(Q)$(CC) -std=c11 -fPIC -fvisibility=hidden -I$(LLHTTP_INCLUDE) \
	    $(filter-out --coverage,$(VARIANT_CFLAGS)) -c $< -o $@

$(BUILD)/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	@echo "  CC    $< ($(VARIANT))"
	$(Q)$(CC) $(CFLAGS_COMMON) $(WARNINGS) -Wno-missing-prototypes $(VARIANT_CFLAGS) -c $< -o $@

# The unit tests link only the Python-free sources: no libpython needed.
$(UNIT_BINARY): $(UNIT_OBJECTS) $(CORE_OBJECTS) $(LLHTTP_OBJECTS)
	@echo "  LINK  $@"
	$(Q)$(CC) -pthread $(LDFLAGS_VARIANT) -o $@ $^ $(CHECK_LIBS)

unit-binary: require-build require-unit $(UNIT_BINARY)

unit: unit-binary
	CK_RUN_SUITE=$(SUITE) $(UNIT_BINARY)

# PYTEST_ARGS naming a test file or folder replaces tests/integration, so
# PYTEST_ARGS=tests/integration/test_x.py runs that file only; other
# arguments (-k NAME, -x) apply to the whole folder.
# ci/asan.sh, ci/coverage.sh and ci/pythons.sh take it from the environment.
INTEGRATION_TESTS ?= $(if $(filter tests/%,$(PYTEST_ARGS)),,tests/integration)
export INTEGRATION_TESTS

integration: require-build require-integration $(EXTENSION)
	$(VENV_PYTHON) -m pytest $(INTEGRATION_TESTS) $(PYTEST_ARGS)

lint: require-lint $(EXTENSION)
	PYTHON=$(VENV_PYTHON) bash ci/lint.sh

format:
	clang-format -i src/*.c include/pyruvate/*.h tests/unit/*.c tests/unit/*.h tests/bench/*.c

# Both compilers must build the extension and the unit tests warning-free.
build-gcc:
	$(MAKE) --no-print-directory CC=gcc VARIANT=gcc-check all unit-binary EXTENSION=build/gcc-check/_pyruvate$(EXT_SUFFIX)

build-clang: require-build-clang
	$(MAKE) --no-print-directory CC=clang VARIANT=clang-check all unit-binary EXTENSION=build/clang-check/_pyruvate$(EXT_SUFFIX)

coverage: require-coverage
	MAKE="$(MAKE)" bash ci/coverage.sh

test-asan: require-sanitizers
	MAKE="$(MAKE)" bash ci/asan.sh

# The README's test command: every CI stage, in order; the last line names
# the stage that failed.
test: deps
	MAKE="$(MAKE)" bash ci/test.sh

# The README's first command, on a fresh machine too: only the packages the
# build needs, no .venv. The build runs in a second make because this one
# listed $(LLHTTP_DIR) before node-llhttp was installed (make reads a
# directory once), so here its rule would find no llhttp source. The example
# imports the extension built in place; exec, so that a signal sent to make's
# child stops the server itself.
run:
	$(Q)PYTHON=$(PYTHON) bash ci/install-deps.sh build
	$(Q)$(MAKE) --no-print-directory all
	PYTHONPATH=$(CURDIR) exec $(PYTHON) examples/hello.py $(ADDRESS) $(WORKERS)

clean:
	rm -rf build pyruvate/*.so coverage/*.html coverage/*.css coverage/summary.txt

-include $(wildcard $(BUILD)/*.d $(BUILD)/unit/*.d)

# Further targets (fuzzing, benchmarks, slow deployment tests) live beside
# their scripts in ci/*.mk.
include $(wildcard ci/*.mk)
