# Thin wrapper over Meson for the README's commands. Each target installs
# what is missing first (scripts/install-deps.sh is quick when all is there).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PYTHON     ?= /usr/bin/python3
PYTEST_ARGS ?=

.PHONY: all deps build demo test unit e2e bench lint fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=if-release >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled >/dev/null

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# The main job on the embedded default: a few demo jobs through the
# stand-alone jobs-directory agent, then their results.
demo: build
	bash scripts/demo.sh $(BUILD)/drover

# Every test: cmocka unit tests and pytest end-to-end tests, all against the
# AddressSanitizer + UndefinedBehaviorSanitizer build (a leak fails).
test: build-asan
	$(MAKE) --no-print-directory unit e2e

# A suite that runs nothing passes in meson: fail instead (a build dir
# configured without cmocka has no unit tests at all; --list then fails).
unit: $(ASAN_BUILD)/build.ninja
	@meson test -C $(ASAN_BUILD) --no-rebuild --list --suite unit >/dev/null 2>&1 || { \
	  echo "error: no unit tests in '$(ASAN_BUILD)': cmocka was missing when it was configured;" \
	       "run 'make deps', then 'meson configure $(ASAN_BUILD) -Dtests=enabled'" >&2; exit 1; }
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --suite unit

e2e:
	DROVER_BUILD=$(abspath $(ASAN_BUILD)) $(PYTHON) -m pytest -q tests/e2e $(PYTEST_ARGS)

bench: build
	bash bench/run.sh $(BUILD)

lint:
	bash scripts/lint.sh

fuzz: deps
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debugoptimized -Dfuzz=true >/dev/null 2>&1 || true
	ninja -C $(FUZZ_BUILD)
	bash tests/fuzz/run.sh $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
