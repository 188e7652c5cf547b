# Benchmark harnesses; owned by bench-c/.
c-programs::
bench::
