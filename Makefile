# hakmem — top-level build.  `make` builds the library and the C programs,
# `make test` runs every test, `make bench` runs the benchmark comparison.

CC      ?= cc
CFLAGS  ?= -O2 -g -Wall -Wextra -Werror -std=gnu11
BUILD   := build
LIB     := target/release/libhakmem.so

PREFIX  ?= /usr/local
VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)

.PHONY: all lib test lint test-rust test-c bench clean install

all: lib c-programs

lib: $(LIB)

# Cargo decides what is stale; the phony dependency makes it always asked.
$(LIB): FORCE
	cargo build --release

FORCE:

$(BUILD):
	mkdir -p $(BUILD)

test: lib c-programs lint test-rust test-c

# clippy with the lints in Cargo.toml (an `unsafe` block without its
# `// SAFETY:` line is an error), and the layers of src/ (no import upwards,
# no import circle: docs/ARCHITECTURE.md).
lint:
	cargo clippy --release -p hakmem --all-targets
	cargo clippy --release -p hakmem-cdylib
	python3 scripts/check-layers.py

# Unit tests, the model-based test (tests/model.rs) and the loom check of
# the remote-free list (its own target dir: the crate built with --cfg loom).
test-rust:
	cargo test --release
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p hakmem --release --lib loom

include tests/tests.mk
include bench-c/bench.mk

# make install PREFIX=/opt/hakmem: the library, the header, a pkg-config file
# and the `hakmem` wrapper (`hakmem ./app` runs app with hakmem preloaded).
install: lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhakmem.so
	install -m 644 include/hakmem.h $(DESTDIR)$(PREFIX)/include/hakmem.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' scripts/hakmem.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/hakmem.pc
	sed -e 's|@LIBDIR@|$(PREFIX)/lib|g' -e 's|@VERSION@|$(VERSION)|g' scripts/hakmem.in \
		> $(DESTDIR)$(PREFIX)/bin/hakmem
	chmod 755 $(DESTDIR)$(PREFIX)/bin/hakmem

clean:
	cargo clean
	rm -rf $(BUILD) bench-results
