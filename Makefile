# dimimage — see README.md.  `make` builds build/dimimage, `make check` runs
# every test (unit tests twice: normally and under ASan+UBSan).
.SUFFIXES:

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/dimimage
MANDIR  := $(PREFIX)/share/man
BASHCOMPDIR := $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  := $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR := $(PREFIX)/share/fish/vendor_completions.d

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKGS    := libarchive yaml-0.1 libparted blkid ext2fs e2p com_err liblzma libzstd libcrypto libxcrypt
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

ifeq ($(origin CC),default)
CC := cc
endif
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter -Wvla
CPPFLAGS_ALL := -std=c17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Ibuilder $(PKG_CFLAGS) \
	-DDIMIMAGE_VERSION='"$(VERSION)"' -DDIMIMAGE_DATADIR='"$(DATADIR)"'
LDLIBS  := $(PKG_LIBS) -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN    := -fsanitize=thread -fno-omit-frame-pointer

SRC      := $(sort $(wildcard builder/*.c))
LIB_SRC  := $(filter-out builder/main.c,$(SRC))
HDR      := $(wildcard builder/*.h)
TEST_HDR := $(wildcard tests/unit/*.h)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

OBJ      := $(LIB_SRC:builder/%.c=build/obj/%.o)
ASAN_OBJ := $(LIB_SRC:builder/%.c=build/asan/obj/%.o)
TSAN_OBJ := $(SRC:builder/%.c=build/tsan/obj/%.o)
UNITS      := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
ASAN_UNITS := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

all: build/dimimage

build/obj/%.o: builder/%.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

build/asan/obj/%.o: builder/%.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) -O1 -g $(SAN) $(WARN) -c -o $@ $<

# ThreadSanitizer's build of the tool, for tests/integration/73-tsan.sh
build/tsan/obj/%.o: builder/%.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) -O1 -g $(TSAN) $(WARN) -c -o $@ $<

build/libdimimage.a: $(OBJ)
	rm -f $@ && ar rcs $@ $^

build/asan/libdimimage.a: $(ASAN_OBJ)
	rm -f $@ && ar rcs $@ $^

build/dimimage: build/obj/main.o build/libdimimage.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

build/asan/dimimage: build/asan/obj/main.o build/asan/libdimimage.a
	$(CC) -g $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS)

build/tsan/dimimage: $(TSAN_OBJ)
	$(CC) -g $(TSAN) -o $@ $^ $(LDFLAGS) $(LDLIBS)

build/tests/%: tests/unit/%.c build/libdimimage.a $(HDR) $(TEST_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -o $@ $< build/libdimimage.a $(LDLIBS) -lcmocka

build/asan/tests/%: tests/unit/%.c build/asan/libdimimage.a $(HDR) $(TEST_HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) -O1 -g $(SAN) $(WARN) -o $@ $< build/asan/libdimimage.a $(LDLIBS) -lcmocka

# preloaded into builds by tests/integration/74-freed-secrets.sh
build/tests/freed-secrets.so: tests/tools/freed_secrets.c Makefile
	@mkdir -p $(@D)
	$(CC) -std=c17 -D_GNU_SOURCE $(CFLAGS) $(WARN) -shared -fPIC -o $@ $<

units: $(UNITS)
asan: build/asan/dimimage $(ASAN_UNITS)
tsan: build/tsan/dimimage

# Unit tests run from the top directory so they find tests/ and scripts/.
check-unit: $(UNITS)
	@scripts/run-units.sh $(UNITS)

check-asan: build/asan/dimimage $(ASAN_UNITS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:intercept_strchr=0 UBSAN_OPTIONS=print_stacktrace=1 \
		scripts/run-units.sh $(ASAN_UNITS)

check-integration: build/dimimage build/tsan/dimimage build/tests/freed-secrets.so
	@DIMIMAGE="$(CURDIR)/build/dimimage" DIMIMAGE_TSAN="$(CURDIR)/build/tsan/dimimage" tests/run-integration.sh

check-lint: build/dimimage
	@scripts/lint.sh

deps:
	@scripts/install-deps.sh --e2e

check: deps
	@$(MAKE) --no-print-directory check-all

check-e2e: build/dimimage
	@if [ "$${SKIP_E2E:-0}" = 1 ]; then echo "e2e: skipped (SKIP_E2E=1)"; \
	else DIMIMAGE="$(CURDIR)/build/dimimage" tests/e2e/run.sh; fi

# check.sh runs make for each suite: '+' hands it the jobserver, so that
# make -j2 check builds in parallel there too (without it each inner make
# warned "jobserver unavailable" and ran -j1).
check-all: all
	+@scripts/check.sh check-lint check-unit check-asan check-fuzz check-integration check-e2e

# make check boots both releases, as `make e2e` does: app on Trixie (first and
# second boot), the failure path on Bookworm.  A fresh machine builds the two
# arm64 rootfs side by side (~20 min for the slower, Trixie), from the start of
# make check, beside the other suites (scripts/check.sh); E2E_FLAVOURS=trixie
# runs both scenarios on one.

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, corpus in tests/fuzz/corpus/<name>/.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_RUNS ?= 3000

FUZZ_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror -Wno-unused-parameter
FUZZ_OBJ := $(LIB_SRC:builder/%.c=build/fuzz/obj/%.o)

# The library is compiled once with coverage instrumentation; each target
# only adds its own file.
build/fuzz/obj/%.o: builder/%.c $(HDR) Makefile
	@mkdir -p $(@D)
	clang $(CPPFLAGS_ALL) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libdimimage.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libdimimage.a $(HDR) $(wildcard tests/fuzz/*.h)
	@mkdir -p $(@D)
	clang $(CPPFLAGS_ALL) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libdimimage.a $(LDLIBS)

fuzzers: $(FUZZERS)

check-fuzz: $(FUZZERS)
	@scripts/run-fuzz.sh smoke $(FUZZ_SMOKE_RUNS) $(FUZZERS)

fuzz: $(FUZZERS)
	@scripts/run-fuzz.sh time $(FUZZ_SECONDS) $(FUZZERS)

e2e: build/dimimage
	@scripts/install-deps.sh --e2e
	@DIMIMAGE="$(CURDIR)/build/dimimage" tests/e2e/run.sh

demo: 
	scripts/install-deps.sh
	$(MAKE) all
	scripts/demo.sh

# (DESTDIR quoted: a staging directory may have a space in its path)
install: build/dimimage
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(DATADIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(BASHCOMPDIR)" \
		"$(DESTDIR)$(ZSHCOMPDIR)" "$(DESTDIR)$(FISHCOMPDIR)"
	install -m 0755 build/dimimage "$(DESTDIR)$(BINDIR)/dimimage"
	cp -R profiles overlays "$(DESTDIR)$(DATADIR)/"
	chmod -R u=rwX,go=rX "$(DESTDIR)$(DATADIR)/profiles" "$(DESTDIR)$(DATADIR)/overlays"
	install -m 0644 docs/dimimage.1 "$(DESTDIR)$(MANDIR)/man1/dimimage.1"
	install -m 0644 scripts/dimimage.bash-completion "$(DESTDIR)$(BASHCOMPDIR)/dimimage"
	install -m 0644 scripts/dimimage.zsh-completion "$(DESTDIR)$(ZSHCOMPDIR)/_dimimage"
	install -m 0644 scripts/dimimage.fish "$(DESTDIR)$(FISHCOMPDIR)/dimimage.fish"

clean:
	rm -rf build

.PHONY: deps check-all check-e2e fuzzers fuzz check-fuzz all units asan tsan check check-unit check-asan check-integration check-lint e2e demo install clean
