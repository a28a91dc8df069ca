# Fuzzing and the sanitizer/valgrind runs of the Check suite (issue 6).
#   make fuzz FUZZ_SECONDS=N  libFuzzer on the request parser; new inputs go to
#                             build/fuzz/corpus-work, crashes to build/fuzz/artifacts/
#   make fuzz-replay          the harness over tests/fuzz/corpus and regressions (fast)
#   make unit-tsan            the Check suite built with -fsanitize=thread
#   make unit-valgrind        the Check suite under valgrind memcheck (CK_FORK=no)
# FUZZ_TOLERATE=error-status,empty-te in the environment makes the harness
# look past a known class of bug while it is open (see the comment at the top
# of tests/fuzz/fuzz_request.c); without it every check is strict.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 4096
FUZZ_ARGS ?=
FUZZ_BUILD := build/fuzz
FUZZ_BINARY := $(FUZZ_BUILD)/fuzz_request
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(FUZZ_SANITIZE) \
               -Iinclude -I$(LLHTTP_INCLUDE)
# request.c and http_status.c (its Date line) use syntax.c.
FUZZ_SOURCES := src/request.c src/buf.c src/http_status.c src/syntax.c tests/fuzz/fuzz_request.c
FUZZ_LLHTTP_OBJECTS := $(LLHTTP_SOURCES:%=$(FUZZ_BUILD)/llhttp/%.o)

.PHONY: fuzz fuzz-build fuzz-replay unit-tsan unit-valgrind

# llhttp gets coverage instrumentation too, so the fuzzer can steer through
# its state machine; it keeps its own (absent) warning flags.
$(FUZZ_BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link \
	    $(FUZZ_SANITIZE) -I$(LLHTTP_INCLUDE) -c $< -o $@

$(FUZZ_BINARY): $(FUZZ_SOURCES) $(FUZZ_LLHTTP_OBJECTS) $(wildcard include/pyruvate/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARNINGS) -fsanitize=fuzzer -o $@ $(FUZZ_SOURCES) \
	    $(FUZZ_LLHTTP_OBJECTS)

fuzz-build: require-fuzz $(FUZZ_BINARY)

# One process (one core); bounded by FUZZ_SECONDS. The repository corpus is
# read, never written.
fuzz: require-fuzz $(FUZZ_BINARY)
	@mkdir -p $(FUZZ_BUILD)/corpus-work $(FUZZ_BUILD)/artifacts
	$(FUZZ_BINARY) -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -timeout=10 \
	    -dict=tests/fuzz/http.dict -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/ $(FUZZ_ARGS) \
	    $(FUZZ_BUILD)/corpus-work tests/fuzz/corpus tests/fuzz/regressions

# Each file runs once; fails on the first crash, leak or broken invariant
# (the failing file is the last "Running:" line shown).
fuzz-replay: require-fuzz $(FUZZ_BINARY)
	@files=$$(find tests/fuzz/corpus tests/fuzz/regressions -type f | sort); \
	$(FUZZ_BINARY) $$files > $(FUZZ_BUILD)/replay.log 2>&1 || \
	    { grep -v '^Executed' $(FUZZ_BUILD)/replay.log | tail -n 40; exit 1; }; \
	echo "fuzz-replay: $$(echo "$$files" | wc -l) inputs ok"

# TSan: the whole Check suite in its own build directory (build/tsan), forked
# as usual; a race report makes the test's child exit 66 and the test fail.
# TSan slows the threads down, hence the longer Check timeouts.
unit-tsan:
	$(MAKE) --no-print-directory VARIANT=tsan unit-binary
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	    CK_TIMEOUT_MULTIPLIER=10 CK_RUN_SUITE=$(SUITE) timeout 900 build/tsan/check_pyruvate

# Valgrind needs an uninstrumented binary: the debug variant (build/debug).
# CK_FORK=no, so that Check's forked children do not show up as leaks; Check
# timeouts do not apply then, so the run is bounded by timeout(1).
unit-valgrind: require-valgrind
	$(MAKE) --no-print-directory VARIANT=debug unit-binary
	CK_FORK=no CK_RUN_SUITE=$(SUITE) timeout 900 valgrind -q --leak-check=full \
	    --error-exitcode=1 build/debug/check_pyruvate
