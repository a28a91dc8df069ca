# libFuzzer on src/proxy.c (forwarding headers; see tests/fuzz/fuzz_proxy.c).
#   make fuzz-proxy FUZZ_SECONDS=N   one process, bounded; findings go to
#                                    build/fuzz/proxy-artifacts/
# Uses FUZZ_CC, FUZZ_SECONDS, FUZZ_CFLAGS and FUZZ_BUILD from ci/fuzz.mk (in
# recipes only: that file may be read after this one).

FUZZ_PROXY_BINARY := build/fuzz/fuzz_proxy

.PHONY: fuzz-proxy

$(FUZZ_PROXY_BINARY): src/proxy.c tests/fuzz/fuzz_proxy.c $(wildcard include/pyruvate/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARNINGS) -fsanitize=fuzzer -o $@ src/proxy.c \
	    tests/fuzz/fuzz_proxy.c

fuzz-proxy: $(FUZZ_PROXY_BINARY)
	@mkdir -p $(FUZZ_BUILD)/proxy-corpus $(FUZZ_BUILD)/proxy-artifacts
	$(FUZZ_PROXY_BINARY) -max_total_time=$(FUZZ_SECONDS) -max_len=512 -timeout=10 \
	    -dict=tests/fuzz/proxy.dict -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/proxy-artifacts/ $(FUZZ_ARGS) \
	    $(FUZZ_BUILD)/proxy-corpus
