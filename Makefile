# zcrm-sync — one Makefile for the library, the programs and the tests.
#
#   make              build webhook/zcrm_webhook and batch/* (normal build)
#   make asan         the same with ASan+UBSan, into build/asan/
#   make check        deps, unit + integration tests, then again under ASan+UBSan
#   make check-unit   C unit tests only (fast)
#   make check PYTEST_JOBS=0  the pytest runs in one process (default 4 workers)
#   make fuzz-smoke   every tests/fuzz/fuzz_*.c for FUZZ_SECONDS (30) each
#   make fuzz         the same for 600 s each
#   make bench        the benchmarks (bench/README.md); make bench-smoke runs
#                     each once at a tiny size, judging no time (make check does)
#   make WERROR=1     warnings are errors (CI sets it via CI=true)
#   make demo         the whole system on this machine against the Zoho
#                     simulator, in .demo/ (make demo-stop; KEEP=1 keeps .demo/)
#   make install      PREFIX=/usr/local DESTDIR= (make uninstall removes it)
#   make deb          a Debian package in build/deb/ (debian/)
#   make man          the manual pages in build/normal/man/ (make builds them)
#   make sample-config  regenerate etc/zcrm-sync.conf.example from common/cfg.c
#
# Layout: common/*.c -> libzcrm.a; webhook/*.c -> one program; batch/<x>.c ->
# one program each (their logic is in common/); tests/unit/test_<x>.c -> one
# cmocka binary each.

PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3
PREFIX     ?= /usr/local
DESTDIR    ?=
VERSION    := 0.1.0

STD  := -std=c11 -D_GNU_SOURCE
WARN := -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes \
        -Wstrict-prototypes -Wold-style-definition -Wpointer-arith -Wundef \
        -Wformat=2 -Wno-format-zero-length -Wmissing-format-attribute -Wshadow
OPT  ?= -O2 -g

ifeq ($(CI),true)
WERROR ?= 1
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKGS := libcurl json-c libpq zlib
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
FCGI_LIBS  := $(shell $(PKG_CONFIG) --libs fcgi 2>/dev/null || echo -lfcgi)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

ifeq ($(SANITIZER),1)
BUILD   := build/asan
OPT     := -O1 -g
XFLAGS  := $(SANITIZE)
BINROOT := build/asan/
else
BUILD   := build/normal
XFLAGS  :=
BINROOT :=
endif

CFLAGS_ALL  = $(STD) $(WARN) $(OPT) $(XFLAGS) -pthread -Icommon $(PKG_CFLAGS) \
              -DZCRM_VERSION='"$(VERSION)"' $(CFLAGS)
LDFLAGS_ALL = $(XFLAGS) -pthread $(LDFLAGS)
LIBS_ALL    = $(PKG_LIBS) $(FCGI_LIBS) -lm

COMMON_SRC  := $(wildcard common/*.c)
SQL_FILES   := $(sort $(wildcard sql/[0-9]*.sql))
GEN_MIGRATIONS := $(BUILD)/gen/migrations.c
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
LIB         := $(BUILD)/libzcrm.a

WEBHOOK_SRC := $(wildcard webhook/*.c)
WEBHOOK_OBJ := $(WEBHOOK_SRC:%.c=$(BUILD)/%.o)
WEBHOOK_BIN := $(BINROOT)webhook/zcrm_webhook

BATCH_SRC   := $(wildcard batch/*.c)
BATCH_BIN   := $(BATCH_SRC:%.c=$(BINROOT)%)

TOOL_SRC    := $(wildcard tests/tools/*.c)
TOOL_BIN    := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)

ALL_OBJ := $(COMMON_OBJ) $(WEBHOOK_OBJ) \
           $(BATCH_SRC:%.c=$(BUILD)/%.o) $(UNIT_SRC:%.c=$(BUILD)/%.o) \
           $(TOOL_SRC:%.c=$(BUILD)/%.o)

.PHONY: all asan deps check check-unit check-integration clean install uninstall soak \
        demo demo-stop bench help unit-bins sample-config check-sample-config fuzz fuzz-smoke fuzz-bins \
        man deb

MAN_DIR   := $(BUILD)/man
MAN_STAMP := $(MAN_DIR)/.stamp

all: $(WEBHOOK_BIN) $(BATCH_BIN) $(TOOL_BIN) $(MAN_STAMP)

# Manual pages, written from each program's --help and the webhook's
# --sample-config (scripts/gen-man.py), so they cannot drift from them.
man: $(MAN_STAMP)
$(MAN_STAMP): $(WEBHOOK_BIN) $(BATCH_BIN) scripts/gen-man.py
	$(PYTHON) scripts/gen-man.py $(MAN_DIR) $(WEBHOOK_BIN) $(INSTALL_PROGS)
	@touch $@

help:
	@sed -n '2,/^$$/p' Makefile

$(BUILD)/%.o: %.c $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(GEN_MIGRATIONS): $(SQL_FILES) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $@ $(SQL_FILES)

$(BUILD)/gen/migrations.o: $(GEN_MIGRATIONS) $(BUILD)/.flags
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

# Rebuild everything when the flags change.
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CFLAGS_ALL) $(LDFLAGS_ALL)' | cmp -s - $@ || echo '$(CFLAGS_ALL) $(LDFLAGS_ALL)' > $@
.PHONY: FORCE
FORCE:

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(WEBHOOK_BIN): $(WEBHOOK_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(WEBHOOK_OBJ) $(LIB) $(LIBS_ALL)

$(BINROOT)batch/%: $(BUILD)/batch/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LIBS_ALL)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LIBS_ALL) $(CMOCKA_LIBS)

# test_reply tests a file of the webhook (reply.c), which is not in the library.
$(BUILD)/tests/test_reply: $(BUILD)/tests/unit/test_reply.o $(BUILD)/webhook/reply.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CMOCKA_LIBS)

# Test-only programs (tests/tools/*.c) that drive common/ from integration tests.
$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LIBS_ALL)

unit-bins: $(UNIT_BIN)

asan:
	$(MAKE) SANITIZER=1 all unit-bins

deps:
	@scripts/install-deps.sh

check-unit: all unit-bins
	@scripts/run-unit.sh $(BUILD)/tests

# pytest-xdist workers: most tests wait on their servers rather than use the
# CPU, so more workers than cores pay off (tests/README.md). --dist load
# spreads a file's tests too: whole files would leave the longest as the
# tail. PYTEST_JOBS=0 (or 1) runs them in one process, for -s or --pdb.
PYTEST_JOBS ?= 4
PYTEST_DIST ?= load
PYTEST_XDIST = $(if $(filter-out 0 1,$(PYTEST_JOBS)),-n $(PYTEST_JOBS) --dist $(PYTEST_DIST))

check-integration: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) ZCRM_TOOLS=$(CURDIR)/$(BUILD)/tools $(PYTHON) -m pytest -q $(PYTEST_XDIST) $(PYTEST_DIRS) $(PYTEST_ARGS)

# The whole suite: normal build, then the C-facing tests again under
# ASan+UBSan (the simulator's own contract tests need no second run, and
# the long convergence scenario runs once: the other tests cover the same C
# paths under the sanitizers), then 30 s of each fuzz target, then every
# benchmark once at a tiny size (bench-smoke).
PYTEST_DIRS ?= tests/sim tests/integration
check: deps
	$(MAKE) check-unit check-integration
	$(MAKE) SANITIZER=1 PYTEST_DIRS=tests/integration \
		PYTEST_ARGS="--ignore=tests/integration/test_converge.py $(PYTEST_ARGS)" \
		check-unit check-integration
	$(MAKE) fuzz-smoke
	$(MAKE) bench-smoke

# ---- fuzzing: libFuzzer + ASan + UBSan, clang only, into build/fuzz/ --------
# Every tests/fuzz/fuzz_<x>.c becomes build/fuzz/fuzz_<x>, linked against
# all of common/ (plus the embedded migrations) compiled with coverage
# instrumentation; the linker takes only the objects a target needs.
# scripts/run-fuzz.sh runs each on a copy of tests/fuzz/corpus/<x>/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  = -std=c11 -D_GNU_SOURCE -g -O1 -pthread -Icommon $(PKG_CFLAGS) \
               -DZCRM_VERSION='"$(VERSION)"' $(FUZZ_SAN)
FUZZ_OBJ     := $(COMMON_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/gen/migrations.o
FUZZ_LIB     := $(FUZZ_BUILD)/libzcrm-fuzz.a
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/.flags: FORCE
	@mkdir -p $(FUZZ_BUILD)
	@echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cmp -s - $@ || echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' > $@

$(FUZZ_BUILD)/common/%.o: common/%.c $(FUZZ_BUILD)/.flags
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/gen/migrations.c: $(SQL_FILES) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $@ $(SQL_FILES)

$(FUZZ_BUILD)/gen/migrations.o: $(FUZZ_BUILD)/gen/migrations.c $(FUZZ_BUILD)/.flags
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(PKG_LIBS) -lm

fuzz-bins: $(FUZZ_BIN)

fuzz-smoke: fuzz-bins
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

fuzz:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=600

-include $(FUZZ_OBJ:.o=.d)

# ---- the sample config: generated from common/cfg.c's key table -----------
SAMPLE_CONFIG := etc/zcrm-sync.conf.example

sample-config: $(WEBHOOK_BIN)
	@mkdir -p $(dir $(SAMPLE_CONFIG))
	$(WEBHOOK_BIN) --sample-config > $(SAMPLE_CONFIG).tmp
	@mv $(SAMPLE_CONFIG).tmp $(SAMPLE_CONFIG)

# Fails when the example is out of date (tests/integration/test_docs.py too).
check-sample-config: $(WEBHOOK_BIN)
	@$(WEBHOOK_BIN) --sample-config | diff -u $(SAMPLE_CONFIG) - || \
	  { echo "$(SAMPLE_CONFIG) is out of date: run make sample-config" >&2; exit 1; }

# ---- install / uninstall (docs/operations.md) --------------------------------
# Programs go to $(BINDIR) under their installed names (the ones cron.d and
# systemd use); the migrations are also embedded in every program, the copies
# in $(DATADIR)/sql are for reading. A zcrm-sync.conf is never installed or
# removed, only the example beside it. The cron file's PATH gets $(BINDIR)
# when that is not already on it; the systemd units get $(BINDIR) in
# ExecStart. `make uninstall` with the same PREFIX/DESTDIR removes exactly
# these files (and the package's own directories once empty).
BINDIR         ?= $(PREFIX)/bin
DATADIR        ?= $(PREFIX)/share/zcrm-sync
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
INSTALL        ?= install

# build path : installed name
INSTALL_PROGS := $(WEBHOOK_BIN):zcrm-webhook \
                 $(BINROOT)batch/initial_sync:zcrm-initial-sync \
                 $(BINROOT)batch/incremental_sync:zcrm-incremental-sync \
                 $(BINROOT)batch/renew_channel:zcrm-renew-channel \
                 $(BINROOT)batch/reconcile:zcrm-reconcile \
                 $(BINROOT)batch/status:zcrm-status
INSTALLED_BINS := $(foreach p,$(INSTALL_PROGS),$(BINDIR)/$(lastword $(subst :, ,$(p))))
SYSTEMD_UNITS  := zcrm-webhook.service zcrm-webhook.socket
MONITORING_FILES := monitoring/zcrm-sync.rules.yml monitoring/zcrm-sync.dashboard.json
MANDIR         ?= $(PREFIX)/share/man
MAN1_PAGES     := $(foreach p,$(INSTALL_PROGS),$(lastword $(subst :, ,$(p))).1)
CRON_PATH      := $(if $(filter /usr/local/bin /usr/bin /bin,$(BINDIR)),/usr/local/bin:/usr/bin:/bin,$(BINDIR):/usr/local/bin:/usr/bin:/bin)

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/nginx \
	  $(DESTDIR)$(DATADIR)/monitoring $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(SYSCONFDIR)/zcrm-sync $(DESTDIR)$(SYSCONFDIR)/cron.d \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR)
	for p in $(INSTALL_PROGS); do \
	  $(INSTALL) -m 755 "$${p%%:*}" "$(DESTDIR)$(BINDIR)/$${p##*:}" || exit 1; \
	done
	$(INSTALL) -m 644 $(SQL_FILES) $(DESTDIR)$(DATADIR)/sql/
	$(INSTALL) -m 644 nginx/zcrm-sync.conf nginx/zcrm-sync-upstream.conf $(DESTDIR)$(DATADIR)/nginx/
	$(INSTALL) -m 644 $(MONITORING_FILES) $(DESTDIR)$(DATADIR)/monitoring/
	$(INSTALL) -m 644 $(addprefix $(MAN_DIR)/,$(MAN1_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(MAN_DIR)/zcrm-sync.conf.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 $(SAMPLE_CONFIG) $(DESTDIR)$(SYSCONFDIR)/zcrm-sync/zcrm-sync.conf.example
	sed -e 's|^PATH=.*|PATH=$(CRON_PATH)|' \
	  -e 's|^ZCRM_CONFIG=.*|ZCRM_CONFIG=$(SYSCONFDIR)/zcrm-sync/zcrm-sync.conf|' \
	  cron.d/zcrm-sync > $(DESTDIR)$(SYSCONFDIR)/cron.d/zcrm-sync.tmp
	chmod 644 $(DESTDIR)$(SYSCONFDIR)/cron.d/zcrm-sync.tmp
	mv $(DESTDIR)$(SYSCONFDIR)/cron.d/zcrm-sync.tmp $(DESTDIR)$(SYSCONFDIR)/cron.d/zcrm-sync
	for u in $(SYSTEMD_UNITS); do \
	  sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/zcrm-sync/|$(SYSCONFDIR)/zcrm-sync/|g' \
	    "systemd/$$u" > "$(DESTDIR)$(SYSTEMDUNITDIR)/$$u" && \
	  chmod 644 "$(DESTDIR)$(SYSTEMDUNITDIR)/$$u" || exit 1; \
	done
	$(INSTALL) -m 644 systemd/zcrm-sync.tmpfiles $(DESTDIR)$(TMPFILESDIR)/zcrm-sync.conf
	@echo "installed; next steps (zcrm-sync user, config, nginx, systemd, cron): docs/operations.md"

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_BINS))
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/sql/,$(notdir $(SQL_FILES)))
	rm -f $(DESTDIR)$(DATADIR)/nginx/zcrm-sync.conf $(DESTDIR)$(DATADIR)/nginx/zcrm-sync-upstream.conf
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/monitoring/,$(notdir $(MONITORING_FILES)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(MAN1_PAGES)) $(DESTDIR)$(MANDIR)/man5/zcrm-sync.conf.5
	rmdir $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR) \
	  $(DESTDIR)$(PREFIX)/share 2>/dev/null || true
	rm -f $(DESTDIR)$(SYSCONFDIR)/zcrm-sync/zcrm-sync.conf.example
	rm -f $(DESTDIR)$(SYSCONFDIR)/cron.d/zcrm-sync
	rm -f $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(SYSTEMD_UNITS))
	rm -f $(DESTDIR)$(TMPFILESDIR)/zcrm-sync.conf
	rmdir $(DESTDIR)$(TMPFILESDIR) 2>/dev/null || true
	rmdir $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(dir $(SYSTEMDUNITDIR)) 2>/dev/null || true
	rmdir $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/nginx $(DESTDIR)$(DATADIR)/monitoring \
	  $(DESTDIR)$(DATADIR) 2>/dev/null || true
	rmdir $(DESTDIR)$(SYSCONFDIR)/zcrm-sync 2>/dev/null || true

# ---- deb: a Debian package (debian/), built from a copy of the tree ---------
# The copy keeps dpkg-buildpackage's clean step away from this tree's build/.
DEB_DIR := build/deb
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/zcrm-sync-$(VERSION)
	tar -cf - --exclude=./build --exclude=./.git --exclude=./.demo . | \
	  tar -xf - -C $(DEB_DIR)/zcrm-sync-$(VERSION)
	cd $(DEB_DIR)/zcrm-sync-$(VERSION) && dpkg-buildpackage -b -us -uc --no-sign
	@ls $(DEB_DIR)/*.deb

# ---- demo: everything on this machine, in .demo/ (scripts/demo.sh) ---------
demo: deps
	$(MAKE) all
	ZCRM_BIN_ROOT='$(CURDIR)/$(BINROOT)' scripts/demo.sh start

demo-stop:
	KEEP='$(KEEP)' scripts/demo.sh stop

clean:
	rm -rf build webhook/zcrm_webhook $(BATCH_SRC:%.c=%)

# A long convergence run (issue #6): make soak SEED=n RECORDS=n MINUTES=n
SEED ?=
RECORDS ?= 100000
MINUTES ?= 15
soak: all
	ZCRM_SOAK=1 ZCRM_SEED=$(SEED) ZCRM_RECORDS=$(RECORDS) ZCRM_MINUTES=$(MINUTES) \
	ZCRM_REPORT=$(CURDIR)/build/soak-report.json ZCRM_BIN_ROOT=$(CURDIR)/ \
	ZCRM_TOOLS=$(CURDIR)/build/normal/tools \
	$(PYTHON) -m pytest -q -s tests/integration/test_converge.py
	@echo "report: build/soak-report.json"

# Keep objects between runs (they are intermediate files to make).
.SECONDARY:

-include $(ALL_OBJ:.o=.d)

# Notification-to-row lag through nginx + webhook (bench/lag.py; LAG_ARGS
# passes options, e.g. LAG_ARGS="--edits 500").
.PHONY: bench-lag
bench-lag: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) $(PYTHON) bench/lag.py $(LAG_ARGS)

# One bulk page merged, against unzip | psql \copy (bench/bench_bulk.py;
# BULK_ARGS passes options, e.g. BULK_ARGS="--records 50000 --repeat 3").
.PHONY: bench-bulk
bench-bulk: all
	ZCRM_TOOLS=$(CURDIR)/build/normal/tools $(PYTHON) bench/bench_bulk.py $(BULK_ARGS)
# Zoho API credits per piece of work against the simulator's meter, each
# beside the least it could cost (bench/bench_credits.py; CREDITS_ARGS
# passes options, e.g. CREDITS_ARGS="--records 20000 --single 120").
.PHONY: bench-credits
bench-credits: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) $(PYTHON) bench/bench_credits.py $(CREDITS_ARGS)

# A first load at scale: 1,000,000 Leads in 5 pages whose jobs take 30 s at
# the simulator, beside the floor (bench/bench_first_load.py;
# FIRST_LOAD_ARGS="--records 20000 --job-s 3" for a quick look).
.PHONY: bench-first-load
bench-first-load: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) $(PYTHON) bench/bench_first_load.py $(FIRST_LOAD_ARGS)

bench: bench-bulk bench-webhook bench-lag bench-credits bench-first-load

# Notifications/s through nginx -> webhook -> PostgreSQL with wrk, against
# nginx alone and pgbench running the same SQL (bench/bench_webhook.py;
# WEBHOOK_ARGS passes options, e.g. WEBHOOK_ARGS="--duration 5 --threads 16").
.PHONY: bench-webhook
bench-webhook: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) ZCRM_TOOLS=$(CURDIR)/build/normal/tools \
		$(PYTHON) bench/bench_webhook.py $(WEBHOOK_ARGS)

# Every bench-* target above once, at a tiny size and from a fresh state,
# judging no time: each must finish and print its figures, so that none
# rots between runs of make bench (bench/smoke.py; about 45 s).
.PHONY: bench-smoke
bench-smoke: all
	$(PYTHON) bench/smoke.py --make "$(MAKE)"
