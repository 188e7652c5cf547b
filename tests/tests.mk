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
              $(BUILD)/threads_test $(BUILD)/threads_test_plain $(BUILD)/harden_test \
              $(BUILD)/stress $(BUILD)/stress_plain $(BUILD)/oom_test_plain \
              $(BUILD)/lifecycle_plain $(BUILD)/libtls_lib.so $(BUILD)/purge_test $(BUILD)/stat_test \
              $(BUILD)/bigcache_test \
              $(BUILD)/deepbind_test $(BUILD)/libdeepbind_lib.so $(BUILD)/thp_test \
              $(BUILD)/valgrind_test $(BUILD)/valgrind_test_plain $(BUILD)/prof_test \
              $(BUILD)/new_test_plain $(BUILD)/misuse $(BUILD)/early_test $(BUILD)/exit_test

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

# Heap-misuse cases for scripts/misuse.sh: plain, so any allocator can be
# preloaded; -fno-builtin keeps every misuse a real call.
$(BUILD)/misuse: tests/c/misuse.c | $(BUILD)
	$(CC) $(CFLAGS) -fno-builtin -o $@ $<

$(BUILD)/purge_test: tests/c/purge_test.c tests/c/purge_thread.h include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/bigcache_test: tests/c/bigcache_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/stat_test: tests/c/stat_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/exit_test: tests/c/exit_test.c tests/c/purge_thread.h include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/thp_test: tests/c/thp_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

# -O1 -g: google-pprof names the test's functions.
$(BUILD)/prof_test: tests/c/prof_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) -O1 -g -Wall -Wextra -Werror -Iinclude -o $@ $< $(HT_LINKHAK)

# -O1 -g: memcheck's reports name the test's functions and lines.
$(BUILD)/valgrind_test: tests/c/valgrind_test.c include/hakmem.h $(LIB) | $(BUILD)
	$(CC) -O1 -g -Wall -Wextra -Werror -Iinclude -o $@ $< $(HT_LINKHAK)

# Plain, for the preloaded run: hak_usable_size is looked up at run time.
$(BUILD)/valgrind_test_plain: tests/c/valgrind_test.c include/hakmem.h | $(BUILD)
	$(CC) -O1 -g -Wall -Wextra -Werror -Iinclude -DHAK_PRELOADED -o $@ $< -ldl

$(BUILD)/stress: tests/c/stress.c $(LIB) | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< $(HT_LINKHAK)

$(BUILD)/stress_plain: tests/c/stress.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $<

$(BUILD)/oom_test_plain: tests/c/oom_test.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $<

# C++ (installed by tests/usage.sh's set-up when missing): lifecycle cases.
CXX ?= c++
$(BUILD)/lifecycle_plain: tests/cpp/lifecycle.cpp | $(BUILD)
	@command -v $(CXX) >/dev/null || { apt-get install -y -q g++ >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1; apt-get install -y -q g++ >/dev/null 2>&1; }; }
	$(CXX) -O2 -g -Wall -Wextra -Werror -std=c++17 -pthread -o $@ $< -ldl

# After lifecycle_plain, whose rule installs g++ when missing.
$(BUILD)/new_test_plain: tests/cpp/new_test.cpp | $(BUILD) $(BUILD)/lifecycle_plain
	$(CXX) -O2 -g -Wall -Wextra -Werror -std=c++17 -o $@ $< -ldl

# Built plain: run preloaded, its library's malloc binds to glibc's.
$(BUILD)/deepbind_test: tests/c/deepbind_test.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< -ldl

$(BUILD)/libdeepbind_lib.so: tests/c/deepbind_lib.c | $(BUILD)
	$(CC) $(CFLAGS) -pthread -fPIC -shared -o $@ $<

# Plain, linked with the library whose constructor allocates (run preloaded:
# that constructor runs before hakmem's).
$(BUILD)/early_test: tests/c/early_test.c $(BUILD)/libearly_lib.so | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< -L$(BUILD) -learly_lib -Wl,-rpath,$(abspath $(BUILD)) -ldl

$(BUILD)/libearly_lib.so: tests/c/early_lib.c tests/c/early_lib.h | $(BUILD)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

$(BUILD)/libtls_lib.so: tests/c/tls_lib.c | $(BUILD)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

$(BUILD)/threads_test_plain: tests/c/threads_test.c | $(BUILD)
	$(CC) $(HT_CFLAGS) -o $@ $< -ldl

test-c:: $(HT_BINS) $(LIB)
	$(BUILD)/api_test
	$(HT_PRELOAD) $(BUILD)/api_test_plain
	$(BUILD)/threads_test
	$(HT_PRELOAD) $(BUILD)/threads_test_plain
	$(BUILD)/harden_test
	HAK_LIB=$(abspath $(LIB)) tests/misuse_test.sh
	HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/api_test_plain
	HAKMEM_PURGE_DELAY_MS=0 $(HT_PRELOAD) $(BUILD)/threads_test_plain
	$(BUILD)/stress -t 4 -n 40000 -S 7
	HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/stress_plain -t 4 -n 40000 -S 8
	$(HT_PRELOAD) $(BUILD)/oom_test_plain
	HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/oom_test_plain
	$(BUILD)/purge_test
	HAKMEM_PURGE_THREAD=0 $(BUILD)/purge_test off
	HAKMEM_PURGE_DELAY_MS=60000 $(BUILD)/bigcache_test
	$(HT_PRELOAD) $(BUILD)/deepbind_test $(abspath $(BUILD)/libdeepbind_lib.so)
	HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/deepbind_test $(abspath $(BUILD)/libdeepbind_lib.so)
	for mode in never default always; do HAKMEM_THP=$$mode $(BUILD)/thp_test $$mode || exit 1; done
	$(BUILD)/stat_test
	HAKMEM_STATS=1 $(BUILD)/stat_test counted
	HAKMEM_STATS=json $(BUILD)/stat_test counted 2>$(BUILD)/stats.json
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); \
		assert d["mapped"] >= d["active"] > 0 and d["counts"]["remote_frees"] >= 1000, d; \
		assert any(k["mallocs"] >= 1000 for k in d["classes"]), d["classes"]; \
		print("HAKMEM_STATS=json: a JSON report,", len(d["classes"]), "classes")' $(BUILD)/stats.json
	$(HT_PRELOAD) $(BUILD)/new_test_plain
	HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/new_test_plain
	$(HT_PRELOAD) $(BUILD)/early_test
	for k in 0 1 2 3 4 5; do EARLY_FIRST=$$k HAKMEM_HARDEN=1 $(HT_PRELOAD) $(BUILD)/early_test || exit 1; done
	timeout -s KILL 60 $(BUILD)/exit_test
	timeout -s KILL 60 $(BUILD)/exit_test fork
	$(HT_PRELOAD) $(BUILD)/lifecycle_plain $(abspath $(BUILD)/libtls_lib.so) > $(BUILD)/lifecycle.out
	@cat $(BUILD)/lifecycle.out
	@grep -q "atexit handler freed" $(BUILD)/lifecycle.out && grep -q "static destructor freed" $(BUILD)/lifecycle.out \
		|| { echo "lifecycle: the frees after main did not run"; exit 1; }
	HAK_LIB=$(abspath $(LIB)) tests/programs.sh
	tests/usage.sh

test-c-glibc: $(BUILD)/api_test_plain $(BUILD)/threads_test_plain
	$(BUILD)/api_test_plain
	$(BUILD)/threads_test_plain
