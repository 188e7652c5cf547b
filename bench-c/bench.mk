# Benchmark harnesses and `make bench`; owned by bench-c/.
#
#   make bench                 builds the library and the harnesses, installs the
#                              peer allocators and runs scripts/bench.sh
#   BENCH_QUICK=1 make bench   the same with fewer, shorter runs (about 10 minutes)
#
# Results land in bench-results/ (results.csv, results.md, chart.svg).
# scripts/redis-idle.sh (the redis_idle row) needs no build: it installs
# Debian's redis-server itself.

BENCH_BINS := $(BUILD)/larson $(BUILD)/random_mixed $(BUILD)/memory $(BUILD)/churn $(BUILD)/bigblocks \
              $(BUILD)/prodcons $(BUILD)/quiet $(BUILD)/bigheap $(BUILD)/handoff $(BUILD)/falseshare $(BUILD)/manythreads

c-programs:: $(BENCH_BINS)

$(BENCH_BINS): $(BUILD)/%: bench-c/%.c bench-c/bench_common.h | $(BUILD)
	$(CC) $(CFLAGS) -pthread -o $@ $< -lm

bench: lib c-programs
	bash scripts/bench.sh
