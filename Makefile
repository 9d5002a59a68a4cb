# swapread — one non-recursive Makefile.
#
#   make            library (static + shared) and the swapread CLI
#   make check      unit and integration tests (cmocka)
#   make demo       the main job on a built-in holey image
#   make help       every target and variable
#
# Variants build in their own trees: SAN=address,undefined -> build/san/.
# WERROR=1 adds -Werror. User CFLAGS/LDFLAGS are respected; project flags
# are appended.

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
SAN ?=
WERROR ?=
SR_NO_DEPS ?=
O ?=

VERSION := 0.1.0
SOVERSION := 0

ifneq ($(O),)
B := $(O)
else ifeq ($(SAN),)
B := build
else
B := build/san
endif

SR_CFLAGS := -std=c11 -D_GNU_SOURCE -fvisibility=hidden -fPIC -MMD -MP \
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wformat=2 -fstack-protector-strong \
  -Icore/include -Iswap/include -Iloop/include
SR_LDFLAGS := -Wl,-z,relro,-z,now
ifeq ($(SAN),)
SR_CFLAGS += -D_FORTIFY_SOURCE=2
else
SR_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
SR_LDFLAGS += -fsanitize=$(SAN)
endif
ifeq ($(WERROR),1)
SR_CFLAGS += -Werror
endif
# Asserts stay on in every build: never pass -DNDEBUG.
ALL_CFLAGS = $(CFLAGS) $(SR_CFLAGS)
ALL_LDFLAGS = $(LDFLAGS) $(SR_LDFLAGS)

# --- sources (one layer per directory; core <- swap <- loop) -------------
CORE_SRC := $(sort $(wildcard core/*.c))
SWAP_SRC := $(sort $(wildcard swap/*.c))
LOOP_SRC := $(sort $(wildcard loop/*.c))
CLI_SRC := $(sort $(wildcard loop/cli/*.c))
LIB_SRC := $(CORE_SRC) $(SWAP_SRC) $(LOOP_SRC)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/obj/%.o)
PUBLIC_HDR := $(wildcard core/include/swapread/*.h swap/include/swapread/*.h \
  loop/include/swapread/*.h)
UMBRELLA_HDR := loop/include/swapread.h

LIB_LIBS := -lpthread
ifneq ($(LOOP_SRC),)
LIB_LIBS += -luv
endif

STATIC_LIB := $(B)/libswapread.a
SHARED_LIB := $(B)/libswapread.so.$(VERSION)
SHARED_SONAME := libswapread.so.$(SOVERSION)
CLI := $(B)/swapread

TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
# docs/examples/: the cookbook's complete programs, built and run by check.
EXAMPLE_SRC := $(sort $(wildcard docs/examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:docs/examples/%.c=$(B)/examples/%)
TEST_SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(B)/obj/%.o)

# Benchmarks: one program per tests/bench/bench_<scenario>.c, linked with the
# static library and the bench support object (no cmocka).
BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)
BENCH_SUPPORT_OBJ := $(B)/obj/tests/bench/bench.o

# The soak program (tests/soak/soak.c; `make soak`, and its short form in
# check).
SOAK_SECONDS ?= 60
SOAK_READS ?= 100000
SOAK_BIN := $(B)/soak/soak

.PHONY: all lib cli check tests demo deps install uninstall clean format \
  fuzz fuzz-build \
  lint help bench bench-insns soak check-guest demo-guest guest-build guest-deps
all: lib cli

lib: $(STATIC_LIB) $(B)/libswapread.so
cli: $(CLI)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SHARED_SONAME) $(ALL_LDFLAGS) -o $@ $^ \
	  $(LIB_LIBS)

$(B)/libswapread.so: $(SHARED_LIB)
	ln -sf libswapread.so.$(VERSION) $(B)/$(SHARED_SONAME)
	ln -sf libswapread.so.$(VERSION) $@

$(CLI): $(CLI_OBJ) $(STATIC_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC_LIB) $(LIB_LIBS)

# Tests link the static library, so they see only the public API (plus
# tests/support/, the test-side helpers).
$(B)/tests/%: $(B)/obj/tests/%.o $(TEST_SUPPORT_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJ) $(STATIC_LIB) \
	  -lcmocka $(LIB_LIBS)

# The core OOM loop (tests/test_reliability_oom_core.c) fails core/'s own
# malloc/calloc/realloc calls, which bypass the allocator hook: only this
# binary wraps them at link time (its __wrap_* forward to __real_*, libc's or
# the sanitizer's). private: the prerequisites do not inherit it.
$(B)/tests/test_reliability_oom_core: private ALL_LDFLAGS += \
  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

$(B)/bench/%: $(B)/obj/tests/bench/%.o $(BENCH_SUPPORT_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(BENCH_SUPPORT_OBJ) $(STATIC_LIB) \
	  $(LIB_LIBS)

$(B)/examples/%: $(B)/obj/docs/examples/%.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIB_LIBS)

deps:
	@[ -n "$(SR_NO_DEPS)" ] || sh .ci/deps.sh build-essential pkg-config \
	  libcmocka-dev libuv1-dev ?valgrind

tests: $(TEST_BIN) $(EXAMPLE_BIN) $(CLI) $(SOAK_BIN)

check: deps
	@$(MAKE) --no-print-directory tests lib
	@SR_CLI=$(CURDIR)/$(CLI) SR_SHLIB=$(CURDIR)/$(SHARED_LIB) SAN="$(SAN)" \
	  SR_SOAK=$(CURDIR)/$(SOAK_BIN) \
	  sh tests/run-tests.sh $(TEST_BIN) $(EXAMPLE_BIN) \
	  tests/soak/valgrind-check.sh

# Instructions per operation under callgrind (repeatable, load-proof).
INSNS_BIN := $(B)/bench/insns
$(INSNS_BIN): $(B)/obj/tests/bench/insns.o $(BENCH_SUPPORT_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(BENCH_SUPPORT_OBJ) $(STATIC_LIB) \
	  $(LIB_LIBS)

bench-insns: deps $(INSNS_BIN)
	@sh tests/bench/insns.sh $(INSNS_BIN)

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	@sh tests/bench/run.sh $(BENCH_BIN)

demo: deps
	@$(MAKE) --no-print-directory cli
	@sh tests/demo.sh $(CLI)

# --- soak (load; not in check) --------------------------------------------
# tests/soak/soak.c: SOAK_READS reads in flight for SOAK_SECONDS while a
# forked child pages the kit image in and out. `make check` runs a short
# form under valgrind (tests/soak/valgrind-check.sh; under SAN= with the
# sanitizers instead).
$(SOAK_BIN): $(B)/obj/tests/soak/soak.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIB_LIBS)

soak: deps
	@$(MAKE) --no-print-directory $(SOAK_BIN)
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_READS=$(SOAK_READS) $(SOAK_BIN)

# --- the real-guest tests (tests/guest/; docs/real-guest.md) --------------
# A Debian kernel and an initramfs (busybox, virtio modules, guestprog)
# cached under $(B)/guest/ (the kernel is fetched once, while
# $(B)/guest/vmlinuz exists); QEMU under TCG; about a minute.
GUEST := $(B)/guest
GUEST_PROG := $(GUEST)/guestprog
# Programs against the public API only, linked like an installed user's.
GUEST_API_BIN := $(GUEST)/find_region $(GUEST)/restart_probe

$(GUEST_PROG): tests/guest/guestprog.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -static -Wall -Wextra -o $@ $<

$(GUEST)/initramfs.cpio.gz: $(GUEST_PROG) tests/guest/init \
  tests/guest/build-guest.sh
	bash tests/guest/build-guest.sh $(GUEST) $(GUEST_PROG)

$(GUEST_API_BIN): $(GUEST)/%: $(B)/obj/tests/guest/%.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIB_LIBS)

guest-deps:
	@[ -n "$(SR_NO_DEPS)" ] || sh .ci/deps.sh build-essential pkg-config \
	  libcmocka-dev libuv1-dev qemu-system-x86 busybox-static python3

guest-build: $(CLI) $(GUEST_API_BIN) $(GUEST)/initramfs.cpio.gz

check-guest: guest-deps
	@$(MAKE) --no-print-directory guest-build
	@python3 tests/guest/check.py --cli $(CLI) --guest-dir $(GUEST)

demo-guest: guest-deps
	@$(MAKE) --no-print-directory guest-build
	@python3 tests/guest/demo.py --cli $(CLI) --guest-dir $(GUEST)

# --- install --------------------------------------------------------------
LIBDIR := $(PREFIX)/lib
INCDIR := $(PREFIX)/include
BINDIR := $(PREFIX)/bin
PCDIR := $(LIBDIR)/pkgconfig

$(B)/swapread.pc: Makefile
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: swapread' \
	  'Description: swap-aware guest virtual memory reads from read-only RAM images' \
	  'Version: $(VERSION)' 'Requires: libuv' \
	  'Libs: -L$${libdir} -lswapread' 'Libs.private: -lpthread' \
	  'Cflags: -I$${includedir}' > $@

install: all $(B)/swapread.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)/swapread \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(PCDIR)
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libswapread.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SHARED_SONAME)
	ln -sf libswapread.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libswapread.so
	install -m 644 $(PUBLIC_HDR) $(DESTDIR)$(INCDIR)/swapread/
	install -m 644 $(UMBRELLA_HDR) $(DESTDIR)$(INCDIR)/
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	install -m 644 $(B)/swapread.pc $(DESTDIR)$(PCDIR)/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libswapread.a \
	  $(DESTDIR)$(LIBDIR)/libswapread.so* \
	  $(DESTDIR)$(INCDIR)/swapread.h $(DESTDIR)$(BINDIR)/swapread \
	  $(DESTDIR)$(PCDIR)/swapread.pc
	rm -rf $(DESTDIR)$(INCDIR)/swapread

# --- fuzz (libFuzzer; clang with ASan + UBSan) ----------------------------
# One target per tests/fuzz/fuzz_<name>.c, built into build/fuzz/ against
# core/ and swap/ objects compiled with -fsanitize=fuzzer-no-link in the same
# tree. `make fuzz` runs each for FUZZ_SECONDS on a scratch copy of its seed
# corpus (tests/fuzz/corpus/<name>/ is only read); tests/fuzz/run.sh.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NICE ?= 0
FZ := build/fuzz
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FZ)/%)
FUZZ_LIB_OBJ := $(CORE_SRC:%.c=$(FZ)/obj/%.o) $(SWAP_SRC:%.c=$(FZ)/obj/%.o)
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer \
  -fno-sanitize-recover=all -MMD -MP -Wall -Wextra -Wpedantic -Wshadow \
  -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
  -Icore/include -Iswap/include

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
	  -c $< -o $@

$(FUZZ_BIN): $(FZ)/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ \
	  $< $(FUZZ_LIB_OBJ) -lpthread

fuzz-build: $(FUZZ_BIN)

fuzz:
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_NICE=$(FUZZ_NICE) sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# --- housekeeping -----------------------------------------------------------
FORMAT_FILES = $(wildcard core/*.[ch] core/include/*/*.h swap/*.[ch] \
  swap/include/*/*.h loop/*.[ch] loop/cli/*.[ch] loop/include/*.h \
  loop/include/*/*.h tests/*.[ch] tests/*/*.[ch] docs/examples/*.c)

format:
	clang-format -i $(FORMAT_FILES)

# Any finding fails (CI runs it). The real build's flags. One file per
# clang-tidy run (two at a time): clang-tidy 14 given several files can
# carry analyzer state from one to the next and report va_list false
# positives in cli/options.c after cli/main.c. False positives are silenced
# where they occur, with the reason: // NOLINT(check), // cppcheck-suppress.
lint:
	printf '%s\n' $(LIB_SRC) $(CLI_SRC) | xargs -P2 -I{} \
	  clang-tidy --quiet --warnings-as-errors='*' {} -- \
	  $(filter-out -MMD -MP,$(ALL_CFLAGS))
	cppcheck --quiet --enable=warning,portability --inline-suppr \
	  --error-exitcode=1 -Icore/include -Iswap/include -Iloop/include \
	  core swap loop

clean:
	rm -rf build

help:
	@echo 'targets:'
	@echo '  all        static + shared library and the swapread CLI (default)'
	@echo '  check      build and run the cmocka suites (installs deps as root)'
	@echo '  demo       run the CLI on a built-in holey image'
	@echo '  check-guest  end-to-end tests against a Linux guest under QEMU'
	@echo '             (TCG) that swaps; docs/real-guest.md'
	@echo '  demo-guest a read that waits while a real guest swaps'
	@echo '  bench      build and run the benchmarks in tests/bench/'
	@echo '  bench-insns instructions per read/poll under callgrind (repeatable)'
	@echo '  soak       SOAK_READS reads in flight for SOAK_SECONDS while a'
	@echo '             second process pages the image; checks and figures'
	@echo '  fuzz       build the libFuzzer targets (clang) and run each for'
	@echo '             FUZZ_SECONDS on its corpus; a crash fails and is printed'
	@echo '  install    PREFIX=$(PREFIX) DESTDIR=$(DESTDIR): lib, headers, .pc, CLI'
	@echo '  uninstall  remove what install put there'
	@echo '  format     clang-format every source file'
	@echo '  lint       clang-tidy and cppcheck'
	@echo '  clean      remove build/'
	@echo 'variables:'
	@echo '  SAN=address,undefined  sanitizer build in build/san/'
	@echo '  WERROR=1               warnings are errors'
	@echo '  O=dir                  build tree (default build/, build/san/)'
	@echo '  SR_NO_DEPS=1           do not check or install Debian packages'
	@echo '  BENCH_OUT=file         make bench: also append the table to file'
	@echo '  BENCH_REPS=n           make bench: repetitions per figure (15)'
	@echo '  FUZZ_SECONDS=n         make fuzz: seconds per target (60)'
	@echo '  SOAK_SECONDS=n         make soak: duration (60)'
	@echo '  SOAK_READS=n           make soak: reads kept in flight (100000)'
	@echo '  FUZZ_NICE=n            make fuzz: nice level of the fuzzers (0)'
	@echo '  CFLAGS, LDFLAGS, CC, PREFIX, DESTDIR'

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_SUPPORT_OBJ:.o=.d) \
  $(TEST_SRC:tests/%.c=$(B)/obj/tests/%.d) \
  $(EXAMPLE_SRC:docs/examples/%.c=$(B)/obj/docs/examples/%.d) \
  $(BENCH_SRC:%.c=$(B)/obj/%.d) $(BENCH_SUPPORT_OBJ:.o=.d) \
  $(B)/obj/tests/soak/soak.d $(B)/obj/tests/guest/find_region.d \
  $(B)/obj/tests/guest/restart_probe.d
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)
