# C tests; owned by tests/.  Defines c-programs prerequisites and test-c.
#
#   make test-c        builds the library and the test programs, then runs them
#                      against hakmem (linked and preloaded) and tests/programs.sh
#   make test-c-glibc  runs the plain test programs against the system malloc
#                      (the hakmem-only checks are skipped there)
#
# api_test and threads_test are each built twice from one source: linked with
# -lhakmem (HAK_LINKED) and plain, the plain one run under LD_PRELOAD.

HT_CFLAGS  := $(CFLAGS) -pthread -Iinclude -DHAK_EXPECTED_VERSION='"$(VERSION)"'
# -lhakmem precedes the implicit -lc so the standard names bind to hakmem.
HT_LINKHAK := -Ltarget/release -lhakmem -Wl,-rpath,$(abspath target/release)
HT_PRELOAD := HAKTEST_EXPECT_HAKMEM=1 LD_PRELOAD=$(abspath $(LIB))
HT_BINS    := $(BUILD)/api_test $(BUILD)/api_test_plain \
              $(BUILD)/threads_test $(BUILD)/threads_test_plain $(BUILD)/harden_test

.PHONY: test-c-glibc

c-programs:: $(HT_BINS)

$(BUILD)/api_test: tests/c/api_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -DHAK_LINKED -o $@ $< $(HT_LINKHAK) -ldl

$(BUILD)/api_test_plain: tests/c/api_test.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< -ldl

$(BUILD)/threads_test: tests/c/threads_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -DHAK_LINKED -o $@ $< $(HT_LINKHAK) -ldl

$(BUILD)/harden_test: tests/c/harden_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/threads_test_plain: tests/c/threads_test.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< -ldl

test-c:: $(HT_BINS) $(LIB)
	$(BUILD)/api_test
	$(HT_PRELOAD) $(BUILD)/api_test_plain
	$(BUILD)/threads_test
	$(HT_PRELOAD) $(BUILD)/threads_test_plain
	$(BUILD)/harden_test
	HAK_LIB=$(abspath $(LIB)) tests/programs.sh
	tests/usage.sh

test-c-glibc: $(BUILD)/api_test_plain $(BUILD)/threads_test_plain
	$(BUILD)/api_test_plain
	$(BUILD)/threads_test_plain
