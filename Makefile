# stagepipe — the one build entry.
#
#   make                 build build/stagepipe
#   make test            unit tests (cmocka, no daemon)
#   make asan            unit tests under AddressSanitizer + UBSan (build/asan/)
#   make valgrind        unit tests under valgrind memcheck (no leaks allowed)
#   make check           everything testable here: deps, build, unit, valgrind,
#                        asan, fuzz smoke, integration against the asan binary
#   make integration     integration tests against build/stagepipe
#   make integration-asan  the same against build/asan/stagepipe, failing on
#                        any sanitizer report of any stagepipe process
#   make fuzz, fuzz-smoke  libFuzzer targets (tests/fuzz/README.md)
#   make demo            run the example pipeline on a real engine
#   make bench           benchmarks (bench/), each figure beside its anchor
#   make install         PREFIX=/usr/local DESTDIR= (binary, man pages, completions)
#   make uninstall       removes what install put there
#   make analyze         gcc -fanalyzer over the sources
#   make clean
#
# V=1 shows the commands.  SANITIZE=address,undefined builds with sanitizers.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
BUILD     ?= build

CC        ?= cc
PKG_CONFIG ?= pkg-config
PROTOC_C  ?= protoc-c

PKGS      := yaml-0.1 libgit2 libcurl libcjson libarchive libprotobuf-c libxml-2.0 libcrypto sqlite3 libmicrohttpd libpq
TEST_PKGS := cmocka

CFLAGS    ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wformat-security \
             -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
             -Wpointer-arith -Wvla -Wundef -Wwrite-strings -Wnull-dereference \
             -Wimplicit-fallthrough
SP_CFLAGS := -std=c11 $(WARNINGS) -fno-common -MMD -MP \
             -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
             -DSP_VERSION='"$(VERSION)"' -I. -I$(BUILD)/gen
SP_LIBS   := -lpthread -lm

ifneq ($(SANITIZE),)
SP_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

ifneq ($(V),1)
Q  = @
QP = @printf '  %-6s %s\n'
else
Q  =
QP = @:
endif

# pkg-config runs only when a build needs it (not for clean/help).
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS))
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS))

PROTOS    := $(wildcard runners/docker/*.proto)
PROTO_C   := $(patsubst runners/docker/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H   := $(PROTO_C:.c=.h)

LIB_SRC   := $(filter-out $(SP_EXCLUDE),$(wildcard core/*/*.c runners/*.c runners/docker/*.c))
CMD_SRC   := $(wildcard cmd/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
CMD_OBJ   := $(CMD_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libstagepipe.a
BIN       := $(BUILD)/stagepipe

# The web UI: every file under web/ is built into the binary (served by
# core/server/ui.c).  contrib/embed-web.sh writes $(WEB_GEN), whose asm
# .incbin's each file; web.list (rewritten only when the list of files
# changes) regenerates it when a file comes or goes, and the object depends
# on the files themselves, so an edited file is assembled again.
WEB_FILES := $(sort $(shell find web -type f ! -name '.*' ! -name '*~' 2>/dev/null))
WEB_GEN   := $(BUILD)/gen/web_assets.c
LIB_OBJ   += $(BUILD)/obj/gen/web_assets.o

TEST_SRC  := $(wildcard tests/unit/*/*/test_*.c tests/unit/*/test_*.c tests/unit/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_SUPPORT := $(wildcard tests/unit/support/*.c)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT:%.c=$(BUILD)/obj/%.o)

.PHONY: all test asan valgrind check demo install uninstall clean analyze deps integration \
	integration-asan bench help FORCE
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BIN)

$(BIN): $(CMD_OBJ) $(LIB)
	$(QP) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(LIB) $(PKG_LIBS) $(SP_LIBS)

$(LIB): $(LIB_OBJ)
	$(QP) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

# Every object waits for the generated protobuf headers.
$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(QP) CC $<
	$(Q)$(CC) $(SP_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(QP) CC $<
	$(Q)$(CC) $(filter-out -W%,$(SP_CFLAGS)) -w $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: runners/docker/%.proto
	@mkdir -p $(@D)
	$(QP) PROTOC $<
	$(Q)$(PROTOC_C) --proto_path=runners/docker --c_out=$(BUILD)/gen $<

$(BUILD)/gen/web.list: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(WEB_FILES) >$@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(WEB_GEN): contrib/embed-web.sh $(BUILD)/gen/web.list
	$(QP) GEN $@
	$(Q)sh contrib/embed-web.sh $(WEB_FILES) >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/web_assets.o: $(WEB_FILES)

FORCE:

$(BUILD)/obj/tests/%.o: tests/%.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(QP) CC $<
	$(Q)$(CC) $(SP_CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(QP) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJ) $(LIB) $(TEST_LIBS) $(PKG_LIBS) $(SP_LIBS)

# The store's tests also run against a private PostgreSQL cluster that
# tests/tools/pg_cluster.sh starts for the run (SP_TEST_PG_URL; without
# PostgreSQL installed they say they skip that backend).
PG_RUN = tests/tools/pg_cluster.sh run

test: $(BIN) $(TEST_BIN)
	@$(PG_RUN) sh -c 'fail=0; for t in $(TEST_BIN); do \
		if SP_TOP=$(CURDIR) SP_FIXTURES=$(CURDIR)/tests/fixtures $$t >$$t.log 2>&1; then \
			printf "  PASS   %s\\n" "$$t"; \
		else \
			printf "  FAIL   %s\\n" "$$t"; cat $$t.log; fail=1; \
		fi; \
	done; exit $$fail'

ASAN_ARGS = --no-print-directory BUILD=$(BUILD)/asan \
	SANITIZE=address,undefined CFLAGS='-O1 -g'

asan:
	$(Q)$(MAKE) $(ASAN_ARGS) test

# ---- valgrind: every unit test binary under memcheck -----------------------
#
# A test fails on any memcheck error and on a definite or indirect leak
# ("possibly lost" and "still reachable" are not counted: libraries keep
# caches until exit).  Child processes the tests start are not traced.
# contrib/valgrind.supp holds suppressions for noise inside system
# libraries only (each entry says why); a leak or error of ours is fixed,
# never suppressed.  Each test is its own rule: `make -j2 valgrind`.
# The log of test T is $(BUILD)/tests/T.vg.log.
VALGRIND      ?= valgrind
VALGRIND_OPTS ?= --leak-check=full --errors-for-leak-kinds=definite,indirect \
                 --error-exitcode=1 --num-callers=30 --suppressions=contrib/valgrind.supp
VG_RUNS       := $(TEST_BIN:$(BUILD)/tests/%=valgrind-run/%)

valgrind: $(BIN) $(TEST_BIN)
	$(Q)$(PG_RUN) $(MAKE) --no-print-directory -k $(VG_RUNS)

valgrind-run/%: $(BIN) $(BUILD)/tests/%
	$(Q)t=$(BUILD)/tests/$*; \
	if SP_TOP=$(CURDIR) SP_FIXTURES=$(CURDIR)/tests/fixtures \
		$(VALGRIND) -q $(VALGRIND_OPTS) $$t >$$t.vg.log 2>&1; then \
		printf '  PASS   valgrind %s\n' "$$t"; \
	else \
		printf '  FAIL   valgrind %s (log: %s)\n' "$$t" "$$t.vg.log"; \
		grep -Ev '^\[ +(RUN|OK|PASSED) +\]|^\[=+\]' $$t.vg.log | tail -n 80; exit 1; \
	fi

deps:
	$(Q)contrib/deps.sh --engine --browser --fuzz

# Integration tests need a real engine; tests/integration/run.sh starts one.
integration: $(BIN)
	$(Q)tests/integration/run.sh $(BIN)

# The same suite against the ASan+UBSan binary (build/asan/stagepipe): every
# sanitizer report of any stagepipe process (serve's and agent's children
# too) goes to a file, and a test that leaves one fails (run.sh --sanitized).
integration-asan:
	$(Q)$(MAKE) $(ASAN_ARGS) all
	$(Q)tests/integration/run.sh --sanitized $(BUILD)/asan/stagepipe

# The smoke run of every fuzz target inside `make check`: seeds and
# regression cases replayed, then CHECK_FUZZ_SECONDS of fuzzing each, two
# targets at a time.
CHECK_FUZZ_SECONDS ?= 3
CHECK_JOBS         ?= 2

# The integration suite runs once, against the sanitized binary (its
# engine work dominates; the plain binary is what the unit tests, valgrind
# and `make integration` cover); run.sh runs the serve/agent scripts on
# both stores, SQLite and PostgreSQL (NAME@postgres).
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory test
	$(Q)$(MAKE) --no-print-directory -j$(CHECK_JOBS) valgrind
	$(Q)$(MAKE) --no-print-directory asan
	$(Q)$(MAKE) --no-print-directory -j$(CHECK_JOBS) fuzz-smoke \
		FUZZ_SMOKE_SECONDS=$(CHECK_FUZZ_SECONDS)
	$(Q)$(MAKE) --no-print-directory integration-asan

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)contrib/demo.sh $(BIN)

# make bench: every bench/NAME.sh (the issue-14 figures first), then a table
# of the FIGURE lines they print (bench/summary.sh says the format) beside
# their anchors and goals.  BENCH='health pipeline_overhead' runs only those;
# BENCH_RUNS=N (default 3) runs of each measurement, medians.
BENCH_FIRST := pipeline_overhead pipeline_changed health context_upload checkout
BENCH ?= $(BENCH_FIRST) $(filter-out $(BENCH_FIRST) summary lib,$(sort $(basename $(notdir \
	$(wildcard bench/*.sh)))))
bench: $(BIN)
	$(Q)log=$$(mktemp) && trap 'rm -f "$$log"' EXIT && \
	for b in $(BENCH); do \
		echo "== bench/$$b.sh"; \
		{ bench/$$b.sh $(BIN) 2>&1 || echo "BENCH_FAILED bench/$$b.sh"; } | tee -a "$$log"; \
	done; \
	echo "== summary (BENCH_RUNS=$${BENCH_RUNS:-3} runs of each: medians, checkout.sh the best; figures taken under load are noisy)"; \
	bench/summary.sh "$$log"; \
	if grep -q '^BENCH_FAILED' "$$log"; then \
		grep '^BENCH_FAILED' "$$log" | sed 's/^BENCH_FAILED /failed: /'; exit 1; \
	fi

analyze:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/analyze \
		CFLAGS='-O1 -fanalyzer -Wno-analyzer-malloc-leak' all

# ---- fuzzing: libFuzzer targets in tests/fuzz/ (clang) ---------------------
#
#   make fuzz            every target for FUZZ_SECONDS (default 60) on its corpus
#   make fuzz-smoke      every target for FUZZ_SMOKE_SECONDS (default 5), after
#                        replaying its seed corpus and tests/fuzz/regressions/
#   make fuzz FUZZ_TARGETS='pipeline untar'   only these
#
# The library is compiled again with clang under FUZZ_BUILD (build/fuzz) with
# -fsanitize=fuzzer-no-link,address,undefined; each tests/fuzz/fuzz_NAME.c is
# linked with -fsanitize=fuzzer,address,undefined into FUZZ_BUILD/fuzz_NAME.
# New inputs go to FUZZ_BUILD/corpus/NAME (the seeds in tests/fuzz/corpus/NAME
# are only read), crashes to FUZZ_BUILD/artifacts/NAME/.  A crash is kept as a
# regression case in tests/fuzz/regressions/NAME/ once fixed.
# clang -Wformat=2 also warns about vsnprintf(fmt) in libmicrohttpd's log
# callback (core/server/http.c), which cannot carry a format attribute.
FUZZ_CC       ?= clang
FUZZ_BUILD    ?= $(BUILD)/fuzz
FUZZ_SAN      := address,undefined
FUZZ_CFLAGS   ?= -O1 -g -Wno-format-nonliteral
FUZZ_SECONDS  ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_OPTS     ?= -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_TARGETS  ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN      := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
# corpus folders of target NAME that exist: seeds, then regression cases
fuzz_dirs      = $(wildcard tests/fuzz/corpus/$(1) tests/fuzz/regressions/$(1))
fuzz_dict      = $(addprefix -dict=,$(wildcard tests/fuzz/dict/$(1).dict))

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins

fuzz-build:
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) FUZZ_BUILD=$(FUZZ_BUILD) \
		CC=$(FUZZ_CC) SANITIZE=fuzzer-no-link,$(FUZZ_SAN) CFLAGS='$(FUZZ_CFLAGS)' \
		FUZZ_TARGETS='$(FUZZ_TARGETS)' fuzz-bins

# Only meaningful inside the sub-make above (BUILD = FUZZ_BUILD).
fuzz-bins: $(FUZZ_BIN)
	@:

$(FUZZ_BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(LIB)
	$(QP) LINK $@
	$(Q)$(CC) $(filter-out -fsanitize=%,$(LDFLAGS)) -fsanitize=fuzzer,$(FUZZ_SAN) \
		-o $@ $< $(LIB) $(PKG_LIBS) $(SP_LIBS)

# -k: one target failing does not stop the others.
fuzz: fuzz-build
	$(Q)$(MAKE) --no-print-directory -k $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz-run-%: fuzz-build
	$(Q)n=$*; o=$(FUZZ_BUILD); mkdir -p $$o/corpus/$$n $$o/artifacts/$$n; \
	echo "== fuzz_$$n for $(FUZZ_SECONDS)s"; \
	if $$o/fuzz_$$n $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$$o/artifacts/$$n/ $(call fuzz_dict,$*) \
		$$o/corpus/$$n $(call fuzz_dirs,$*) >$$o/fuzz_$$n.log 2>&1; then \
		grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' $$o/fuzz_$$n.log; \
	else \
		printf '  FAIL   fuzz_%s (log: %s)\n' "$$n" "$$o/fuzz_$$n.log"; \
		tail -n 60 $$o/fuzz_$$n.log; exit 1; \
	fi

# Each target is its own rule, so `make -j fuzz-smoke` runs them side by side
# (every one is a process bound to one CPU).
fuzz-smoke: fuzz-build
	$(Q)$(MAKE) --no-print-directory -k $(FUZZ_TARGETS:%=fuzz-smoke-%)

fuzz-smoke-%: fuzz-build
	$(Q)n=$*; s=$(FUZZ_BUILD)/smoke/$$n; rm -rf $$s; mkdir -p $$s/new $$s/artifacts; \
	if $(FUZZ_BUILD)/fuzz_$$n $(FUZZ_OPTS) -max_total_time=$(FUZZ_SMOKE_SECONDS) \
		-artifact_prefix=$$s/artifacts/ $(call fuzz_dict,$*) \
		$$s/new $(call fuzz_dirs,$*) >$$s.log 2>&1; then \
		printf '  PASS   fuzz_%s (%s)\n' "$$n" "$$(grep -o 'stat::number_of_executed_units: [0-9]*' $$s.log | sed 's/.*: /runs: /')"; \
	else \
		printf '  FAIL   fuzz_%s (log: %s)\n' "$$n" "$$s.log"; tail -n 60 $$s.log; exit 1; \
	fi

# The binary, the man pages (docs/man/) and the bash and zsh completions
# (contrib/completion/), under PREFIX, staged under DESTDIR.
install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/stagepipe
	install -m 644 docs/man/stagepipe.1 $(DESTDIR)$(MANDIR)/man1/stagepipe.1
	install -m 644 docs/man/stagepipe.yml.5 $(DESTDIR)$(MANDIR)/man5/stagepipe.yml.5
	install -m 644 contrib/completion/stagepipe.bash $(DESTDIR)$(BASHCOMPDIR)/stagepipe
	install -m 644 contrib/completion/_stagepipe $(DESTDIR)$(ZSHCOMPDIR)/_stagepipe

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/stagepipe $(DESTDIR)$(MANDIR)/man1/stagepipe.1 \
		$(DESTDIR)$(MANDIR)/man5/stagepipe.yml.5 $(DESTDIR)$(BASHCOMPDIR)/stagepipe \
		$(DESTDIR)$(ZSHCOMPDIR)/_stagepipe

clean:
	rm -rf $(BUILD)

help:
	@sed -n '2,20p' Makefile | sed 's/^# \{0,1\}//'

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
