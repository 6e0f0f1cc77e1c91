# tailor — build, test, demo.
#
#   make            lib/libtailor.a, daemon/tailord, daemon/tailorctl
#   make deps       install the Debian packages needed (skips what is present)
#   make check      deps + build + unit + integration + end-to-end suites
#   make demo       the main job on the embedded default (mock Kafka + private Redis)
#   make kafka-up   a real Apache Kafka broker (Maven Central, KRaft) on free
#                   loopback ports, KAFKA_DIR=build/kafka/dev; make kafka-down
#   make asan       build and run the tests under AddressSanitizer + UBSan
#   make tsan       build and run the tests under ThreadSanitizer
#   make valgrind   run the unit suites under valgrind memcheck
#   make bench      the benchmark (docs/benchmarks.md): tailord against the
#                   Kafka and Redis ceilings of the same run, ~5-10 minutes
#   make bench-json decoding alone, JSON against Avro: ns and allocations
#                   per event, about a minute
#   make bench-peer tailord next to a Kafka Streams peer (bench/streams) on a
#                   real broker (PEER_KAFKA_DIR, PEER_BOOTSTRAP, else its own)
#   make fuzz       libFuzzer targets (clang) for FUZZ_SECONDS (60) each;
#                   make fuzz-smoke: 10 s each (CI); make fuzz-deps: clang
#   make install    binaries, schemas, example config, unit file, man pages
#                   under PREFIX (/usr/local), staged under DESTDIR;
#                   make uninstall removes exactly those files
#
# Build flavours go to their own object trees: O=build (default),
# O=build/asan or O=build/tsan; the default flavour also places
# lib/libtailor.a and the binaries under daemon/, where the README points.

CC      ?= gcc
O       ?= build
PKGS    := rdkafka hiredis avro-c yaml-0.1 jansson zlib libmicrohttpd libsystemd
# Debian 12 package names for PKGS, CUnit, the test servers and tools.
DEB_PKGS := build-essential pkg-config librdkafka-dev libhiredis-dev libavro-dev \
            libyaml-dev libjansson-dev zlib1g-dev libcunit1-dev redis-server \
            redis-tools valgrind tzdata libmicrohttpd-dev libsystemd-dev systemd \
            man-db groff-base default-jre-headless maven
# Only for `make fuzz`: clang and its libFuzzer runtime (libclang-rt-14-dev
# holds libclang_rt.fuzzer; clang only recommends it).
FUZZ_PKGS := clang libclang-rt-14-dev

# Lazily expanded: pkg-config runs only once deps are installed.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) cunit 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_LIBS = $(shell pkg-config --libs cunit 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat-security -Wshadow -Wno-missing-field-initializers
OPT      ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SAN_FLAGS) -MMD -MP \
             -Ilib -I$(O)/gen $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN_FLAGS) $(LDFLAGS)
LIBS_ALL = $(PKG_LIBS) -lm -lpthread

ifeq ($(O),build)
LIBA     := lib/libtailor.a
BINDIR   := daemon
else
LIBA     := $(O)/lib/libtailor.a
BINDIR   := $(O)/daemon
endif

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(patsubst %.c,$(O)/obj/%.o,$(LIB_SRC)) $(O)/obj/gen/schemas.o
SUP_SRC   := $(wildcard tests/support/*.c)
SUP_OBJ   := $(patsubst %.c,$(O)/obj/%.o,$(SUP_SRC))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(patsubst tests/integration/%.c,$(O)/tests/%,$(INTEG_SRC))
E2E_SRC   := $(wildcard tests/e2e/test_*.c)
E2E_BIN   := $(patsubst tests/e2e/%.c,$(O)/tests/%,$(E2E_SRC))
BINS      := $(BINDIR)/tailord $(BINDIR)/tailorctl

.PHONY: all deps check test unit integration e2e demo asan tsan valgrind clean tests \
        kafka-up kafka-down test-real-kafka install uninstall bench bench-json \
        bench-peer \
        fuzz-deps fuzz-build fuzz fuzz-smoke fuzz-corpus
all: $(LIBA) $(BINS)

# $(call apt_install,WHO,PACKAGES): installs the packages not yet installed.
apt_install = missing=""; for p in $(2); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "$(1): installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "$(1): all present"; fi

deps:
	@$(call apt_install,deps,$(DEB_PKGS))

fuzz-deps:
	@$(call apt_install,fuzz-deps,$(FUZZ_PKGS))

# Recursive so that pkg-config sees what deps just installed.
check:
	$(MAKE) deps
	$(MAKE) all tests
	$(MAKE) test

tests: $(UNIT_BIN) $(INTEG_BIN) $(E2E_BIN)

# Shell tests (tests/install/*.sh) run make install of this flavour.
SH_TESTS := $(wildcard tests/install/test_*.sh)

# The end-to-end suites run twice: on librdkafka's mock cluster, then,
# whenever Java is present, on a real Apache Kafka broker (test-real-kafka).
test: all tests
	@rc=0; TAILOR_BIN_DIR=$(BINDIR) TAILOR_TEST_DIR=$(O)/tests \
	  bash tests/run.sh $(UNIT_BIN) $(INTEG_BIN) $(E2E_BIN) $(SH_TESTS) || rc=1; \
	if command -v java >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory test-real-kafka || rc=1; \
	else echo "test: no java on PATH, so the real-broker run is skipped"; fi; \
	exit $$rc

# A broker of its own (SASL/SCRAM listener included) for the end-to-end
# suites, stopped and removed afterwards whatever happened.
KAFKA_TEST_DIR := $(O)/kafka-test
KAFKA_SCRAM    := tailor:tailor-scram-secret
test-real-kafka: all tests
	@bash tests/kafka/kafka-down.sh $(KAFKA_TEST_DIR) --purge >/dev/null; \
	trap 'bash tests/kafka/kafka-down.sh $(KAFKA_TEST_DIR) --purge' EXIT; \
	bash tests/kafka/kafka-up.sh $(KAFKA_TEST_DIR) --scram $(KAFKA_SCRAM) || exit 1; \
	echo "=== the end-to-end suites again, on Apache Kafka"; \
	TAILOR_TEST_KAFKA=$(abspath $(KAFKA_TEST_DIR)) TAILOR_BIN_DIR=$(BINDIR) \
	  TAILOR_TEST_DIR=$(O)/tests bash tests/run.sh $(E2E_BIN)

# A broker for trying things by hand: make kafka-up prints its address
# (also in $(KAFKA_DIR)/state); make kafka-down stops it and removes it.
KAFKA_DIR ?= build/kafka/dev
kafka-up:
	@bash tests/kafka/kafka-up.sh $(KAFKA_DIR) --scram $(KAFKA_SCRAM)
	@tail -n +2 $(KAFKA_DIR)/state

kafka-down:
	@bash tests/kafka/kafka-down.sh $(KAFKA_DIR) --purge

unit: $(UNIT_BIN)
	@bash tests/run.sh $(UNIT_BIN)

integration: all $(INTEG_BIN)
	@TAILOR_BIN_DIR=$(BINDIR) bash tests/run.sh $(INTEG_BIN)

e2e: all $(E2E_BIN)
	@TAILOR_BIN_DIR=$(BINDIR) bash tests/run.sh $(E2E_BIN)

demo:
	$(MAKE) deps
	$(MAKE) all
	bash scripts/demo.sh $(BINDIR)

asan:
	$(MAKE) deps
	$(MAKE) O=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" all tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) O=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# ThreadSanitizer: the suites and the tailord they start are tsan builds
# (librdkafka, hiredis, libmicrohttpd are not instrumented, see
# tests/tsan.supp).  Reports go to files (log_path), so a race inside a
# tailord that an end-to-end suite started and whose stderr it discarded
# still fails the run; they are printed at the end.  Every suite runs: the
# whole set took about 10 minutes on a loaded 2-core machine (the end-to-end
# suites most of it), inside the CI budget.
TSAN_O    := build/tsan
TSAN_MAKE  = $(MAKE) O=$(TSAN_O) OPT="-O1 -g -fno-omit-frame-pointer" \
             SAN_FLAGS="-fsanitize=thread"
TSAN_REP  := $(TSAN_O)/reports
TSAN_TESTS = $(patsubst $(O)/%,$(TSAN_O)/%,$(UNIT_BIN) $(INTEG_BIN) $(E2E_BIN))
# librdkafka's threads and locks are C11 ones (thrd_create, mtx_lock) that
# GCC 12's runtime does not see; tests/support/tsan_threads.c maps them to
# the pthread calls it intercepts, in the test programs (with the rest of
# tests/support) and in the binaries.
ifeq ($(O),$(TSAN_O))
$(BINS): $(O)/obj/tests/support/tsan_threads.o
endif
tsan:
	$(MAKE) deps
	$(TSAN_MAKE) all tests
	@rm -rf $(TSAN_REP) && mkdir -p $(TSAN_REP); rc=0; \
	TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp) log_path=$(abspath $(TSAN_REP))/tsan second_deadlock_stack=1" \
	  TAILOR_BIN_DIR=$(TSAN_O)/daemon TAILOR_TEST_DIR=$(TSAN_O)/tests \
	  bash tests/run.sh $(TSAN_TESTS) || rc=1; \
	for f in $(TSAN_REP)/*; do [ -e "$$f" ] || continue; echo "=== $$f"; cat "$$f"; rc=1; done; \
	exit $$rc

valgrind: $(UNIT_BIN)
	@TAILOR_VALGRIND=1 bash tests/run.sh $(UNIT_BIN)

# The benchmark (not part of check): bench/bench.c drives a private Redis,
# the mock cluster (or BENCH_BOOTSTRAP), tailord and the ceilings;
# bench/alloc_preload.so counts tailord's allocations (LD_PRELOAD).
BENCH_O := $(O)/bench

bench: all $(BENCH_O)/bench $(BENCH_O)/alloc_preload.so
	@TAILOR_BIN_DIR=$(BINDIR) BENCH_LIB_DIR=$(BENCH_O) bash bench/run.sh $(BENCH_O)/bench

$(BENCH_O)/bench: $(O)/obj/bench/bench.o $(SUP_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CUNIT_LIBS)

# Decoding alone, JSON against Avro (bench/json_decode.c): ns/event and
# allocations/event, in a minute.
bench-json: $(BENCH_O)/json_decode $(BENCH_O)/alloc_preload.so
	@f=$$(mktemp); BENCH_DATA=$${BENCH_DATA:-../shared/data} BENCH_ALLOC_FILE=$$f \
	  LD_PRELOAD=$(abspath $(BENCH_O))/alloc_preload.so $(BENCH_O)/json_decode; \
	rc=$$?; rm -f $$f; exit $$rc

$(BENCH_O)/json_decode: $(O)/obj/bench/json_decode.o $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The Kafka Streams peer (not part of check; docs/benchmarks.md): its jar is
# built from ~/.m2 when it can be (-o), else with Maven Central.
PEER_MVN := mvn -B -q -f bench/streams/pom.xml package dependency:build-classpath \
            -Dmdep.outputFile=target/classpath.txt

bench-peer: all
	@$(PEER_MVN) -o >/dev/null 2>&1 || $(PEER_MVN)
	@TAILOR_BIN_DIR=$(BINDIR) bash bench/peer.sh \
	  $(if $(PEER_KAFKA_DIR),--kafka-dir $(PEER_KAFKA_DIR)) \
	  $(if $(PEER_BOOTSTRAP),--bootstrap $(PEER_BOOTSTRAP))

$(BENCH_O)/alloc_preload.so: bench/alloc_preload.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -fPIC -shared -o $@ $<

# Fuzzing: fuzz/fuzz_TARGET.c with clang -fsanitize=fuzzer,address,undefined
# against the library compiled by clang with the same sanitizers and
# coverage (build/fuzz/).  fuzz/run.sh runs each on fuzz/corpus/TARGET (new
# inputs go to a temporary directory) and fails on a crash, a leak, a
# timeout or running out of memory, printing the reproducer's path
# (build/fuzz/artifacts/).
FUZZ_CC      ?= clang
FUZZ_O       := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := avro json config expr
FUZZ_BINS    := $(patsubst %,$(FUZZ_O)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_MAKE     = $(MAKE) O=$(FUZZ_O) CC=$(FUZZ_CC) OPT="-O1 -g -fno-omit-frame-pointer" \
                SAN_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"

fuzz-build:
	$(MAKE) deps fuzz-deps
	$(FUZZ_MAKE) $(FUZZ_BINS)

fuzz: fuzz-build
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

# Only in the O=$(FUZZ_O) flavour (as fuzz-build runs it): CC is clang and
# CFLAGS_ALL carries -fsanitize=fuzzer-no-link,...; the target's own file
# adds libFuzzer's main.  fuzz_config serves schema files from memory
# (--wrap=tl_read_file, see fuzz/fuzz_config.c).
ifeq ($(O),$(FUZZ_O))
$(FUZZ_O)/fuzz_config: FUZZ_LDEXTRA := -Wl,--wrap=tl_read_file
$(FUZZ_O)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(LIBA)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Ifuzz -o $@ $< $(LIBA) \
	  $(FUZZ_LDEXTRA) $(LIBS_ALL)
endif

# ---- install ---------------------------------------------------------------
# The unit file and the example configuration get the installed paths.
# SYSCONFDIR is /etc whatever PREFIX is: that is where systemd units and
# operators look for configuration; nothing is installed there (copy the
# example, see tailord(8)).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
I_BINDIR   := $(PREFIX)/bin
I_SBINDIR  := $(PREFIX)/sbin
I_DATADIR  := $(PREFIX)/share
I_MANDIR   := $(I_DATADIR)/man
I_DOCDIR   := $(I_DATADIR)/doc/tailor
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MAN_PAGES  := man/tailorctl.1 man/tailord.yaml.5 man/tailord.8
# Every installed file, relative to DESTDIR (uninstall removes these).
INSTALLED  := $(I_SBINDIR)/tailord $(I_BINDIR)/tailorctl \
              $(I_DATADIR)/tailor/schemas/interaction_event.avsc \
              $(I_DATADIR)/tailor/schemas/trigger.avsc \
              $(I_DOCDIR)/examples/tailord.yaml $(I_DOCDIR)/examples/tailord.env \
              $(UNITDIR)/tailord.service \
              $(I_MANDIR)/man1/tailorctl.1 $(I_MANDIR)/man5/tailord.yaml.5 \
              $(I_MANDIR)/man8/tailord.8

install: $(BINDIR)/tailord $(BINDIR)/tailorctl
	install -d $(DESTDIR)$(I_BINDIR) $(DESTDIR)$(I_SBINDIR) \
	  $(DESTDIR)$(I_DATADIR)/tailor/schemas $(DESTDIR)$(I_DOCDIR)/examples \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(I_MANDIR)/man1 $(DESTDIR)$(I_MANDIR)/man5 \
	  $(DESTDIR)$(I_MANDIR)/man8
	install -m 0755 $(BINDIR)/tailord $(DESTDIR)$(I_SBINDIR)/tailord
	install -m 0755 $(BINDIR)/tailorctl $(DESTDIR)$(I_BINDIR)/tailorctl
	install -m 0644 schemas/interaction_event.avsc schemas/trigger.avsc \
	  $(DESTDIR)$(I_DATADIR)/tailor/schemas/
	sed 's|^  schema: \.\./schemas/|  schema: $(I_DATADIR)/tailor/schemas/|' \
	  config/tailord.yaml > $(DESTDIR)$(I_DOCDIR)/examples/tailord.yaml
	chmod 0644 $(DESTDIR)$(I_DOCDIR)/examples/tailord.yaml
	install -m 0644 systemd/tailord.env.example $(DESTDIR)$(I_DOCDIR)/examples/tailord.env
	sed -e 's|@SBINDIR@|$(I_SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  systemd/tailord.service.in > $(DESTDIR)$(UNITDIR)/tailord.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tailord.service
	install -m 0644 man/tailorctl.1 $(DESTDIR)$(I_MANDIR)/man1/
	install -m 0644 man/tailord.yaml.5 $(DESTDIR)$(I_MANDIR)/man5/
	install -m 0644 man/tailord.8 $(DESTDIR)$(I_MANDIR)/man8/

# Only what install wrote, and the directories only tailor uses.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(I_DATADIR)/tailor/schemas $(DESTDIR)$(I_DATADIR)/tailor \
	  $(DESTDIR)$(I_DOCDIR)/examples $(DESTDIR)$(I_DOCDIR) 2>/dev/null

# Regenerates the seeds of fuzz/corpus/ (checked in; see fuzz/gen_corpus.c).
fuzz-corpus: $(LIBA)
	@mkdir -p $(O)/tools fuzz/corpus/avro fuzz/corpus/json fuzz/corpus/config fuzz/corpus/expr
	$(CC) $(CFLAGS_ALL) -o $(O)/tools/gen_corpus fuzz/gen_corpus.c $(LIBA) $(LIBS_ALL)
	$(O)/tools/gen_corpus
	cp config/tailord.yaml config/demo.yaml fuzz/corpus/config/
	cp $(addprefix tests/data/config/,$(FUZZ_CONFIG_SEEDS)) fuzz/corpus/config/

FUZZ_CONFIG_SEEDS := valid_minimal.yaml valid_null_sections.yaml valid_flow.yaml \
  valid_feature_options.yaml valid_rule_options.yaml invalid_expr_double_multiline.yaml \
  invalid_expr_folded.yaml invalid_expr_unicode.yaml invalid_template_unclosed.yaml \
  invalid_two_documents.yaml invalid_quiet_tz_unknown.yaml invalid_duration_overflow.yaml

# Schemas compiled in as C strings (no xxd needed).
$(O)/gen/schemas.c: schemas/interaction_event.avsc schemas/trigger.avsc
	@mkdir -p $(@D)
	@{ echo '#include "schemas.h"'; \
	  for f in interaction_event trigger; do \
	    echo "const char tl_schema_$$f[] ="; \
	    sed 's/\\/\\\\/g; s/"/\\"/g; s/^/    "/; s/$$/\\n"/' schemas/$$f.avsc; \
	    echo '    ;'; \
	  done; } > $@

$(O)/obj/gen/schemas.o: $(O)/gen/schemas.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(O)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/%: $(O)/obj/daemon/%.o $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(O)/tests/%: $(O)/obj/tests/unit/%.o $(SUP_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CUNIT_LIBS)

$(O)/tests/%: $(O)/obj/tests/integration/%.o $(SUP_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CUNIT_LIBS)

$(O)/tests/%: $(O)/obj/tests/e2e/%.o $(SUP_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CUNIT_LIBS)

# Every object depends on the generated header directory existing.
$(LIB_OBJ) $(SUP_OBJ): | $(O)/gen/schemas.c

clean:
	rm -rf build lib/libtailor.a $(BINS)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
-include $(wildcard $(O)/fuzz_*.d)
