# semples: build, test, demo, install.
SWIFT ?= swift
PREFIX ?= /usr/local
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

.PHONY: setup build release test test-sanitize test-matrix demo bench install fixtures fuzz docs clean

setup:
	@./scripts/setup-system.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# The test command (README, .ci/run). Starts a one-node Slurm for the executor tests; where it
# cannot start, those tests skip and say why.
test: setup
	-./scripts/setup-slurm.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The whole suite under AddressSanitizer (debug and -O) and the threaded suites under ThreadSanitizer.
test-sanitize: setup
	./scripts/sanitize.sh

# The numeric test targets under several OpenBLAS kernels and thread counts (not in .ci/run: long).
test-matrix: setup
	./scripts/test-matrix.sh

# The main job: the daemon on the default spool with a demo job.
demo: release
	./scripts/demo.sh

bench: release
	.build/release/semples bench

fixtures:
	./scripts/make-fixtures.sh

# libFuzzer over every file parser, FUZZ_SECONDS each (the test suite runs a short deterministic pass).
FUZZ_SECONDS ?= 30
fuzz: setup
	./scripts/fuzz.sh build
	./scripts/fuzz.sh all $(FUZZ_SECONDS)

# Man pages and shell completions from the built binaries.
docs: build
	./scripts/make-docs.sh

install: release
	./scripts/install.sh "$(PREFIX)"

clean:
	rm -rf .build
