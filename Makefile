# semples: build, test, demo, install.
SWIFT ?= swift
PREFIX ?= /usr/local
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

.PHONY: setup build release test demo bench install fixtures clean

setup:
	@./scripts/setup-system.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# The test command (README, .ci/run).
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The main job: the daemon on the default spool with a demo job.
demo: release
	./scripts/demo.sh

bench: release
	./scripts/bench.sh

fixtures:
	./scripts/make-fixtures.sh

install: release
	./scripts/install.sh "$(PREFIX)"

clean:
	rm -rf .build
