# hakmem — top-level build.  `make` builds the library and the C programs,
# `make test` runs every test, `make bench` runs the benchmark comparison.

CC      ?= cc
CFLAGS  ?= -O2 -g -Wall -Wextra -Werror -std=gnu11
BUILD   := build
LIB     := target/release/libhakmem.so

.PHONY: all lib test test-rust test-c bench clean

all: lib c-programs

lib: $(LIB)

# Cargo decides what is stale; the phony dependency makes it always asked.
$(LIB): FORCE
	cargo build --release

FORCE:

$(BUILD):
	mkdir -p $(BUILD)

test: lib c-programs test-rust test-c

test-rust:
	cargo test --release

include tests/tests.mk
include bench-c/bench.mk

clean:
	cargo clean
	rm -rf $(BUILD) bench-results
