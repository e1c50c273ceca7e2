# zcrm-sync — one Makefile for the library, the programs and the tests.
#
#   make              build webhook/zcrm_webhook and batch/* (normal build)
#   make asan         the same with ASan+UBSan, into build/asan/
#   make check        deps, unit + integration tests, then again under ASan+UBSan
#   make check-unit   C unit tests only (fast)
#   make WERROR=1     warnings are errors (CI sets it via CI=true)
#
# Layout: common/*.c -> libzcrm.a; webhook/*.c -> one program; batch/<x>.c ->
# one program each (batch/job_*.c are shared job logic, not programs);
# tests/unit/test_<x>.c -> one cmocka binary each.

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

BATCH_LIB_SRC := $(wildcard batch/job_*.c)
BATCH_LIB_OBJ := $(BATCH_LIB_SRC:%.c=$(BUILD)/%.o)
BATCH_SRC   := $(filter-out $(BATCH_LIB_SRC),$(wildcard batch/*.c))
BATCH_BIN   := $(BATCH_SRC:%.c=$(BINROOT)%)

TOOL_SRC    := $(wildcard tests/tools/*.c)
TOOL_BIN    := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)

ALL_OBJ := $(COMMON_OBJ) $(WEBHOOK_OBJ) $(BATCH_LIB_OBJ) \
           $(BATCH_SRC:%.c=$(BUILD)/%.o) $(UNIT_SRC:%.c=$(BUILD)/%.o) \
           $(TOOL_SRC:%.c=$(BUILD)/%.o)

.PHONY: all asan deps check check-unit check-integration clean install uninstall \
        demo demo-stop bench format-check help unit-bins

all: $(WEBHOOK_BIN) $(BATCH_BIN) $(TOOL_BIN)

help:
	@sed -n '2,12p' Makefile

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
FORCE:

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(WEBHOOK_BIN): $(WEBHOOK_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(WEBHOOK_OBJ) $(LIB) $(LIBS_ALL)

$(BINROOT)batch/%: $(BUILD)/batch/%.o $(BATCH_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BATCH_LIB_OBJ) $(LIB) $(LIBS_ALL)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BATCH_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BATCH_LIB_OBJ) $(LIB) $(LIBS_ALL) $(CMOCKA_LIBS)

# Test-only programs (tests/tools/*.c) that drive common/ from integration tests.
$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(BATCH_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(BATCH_LIB_OBJ) $(LIB) $(LIBS_ALL)

unit-bins: $(UNIT_BIN)

asan:
	$(MAKE) SANITIZER=1 all unit-bins

deps:
	@scripts/install-deps.sh

check-unit: all unit-bins
	@scripts/run-unit.sh $(BUILD)/tests

check-integration: all
	ZCRM_BIN_ROOT=$(CURDIR)/$(BINROOT) ZCRM_TOOLS=$(CURDIR)/$(BUILD)/tools $(PYTHON) -m pytest -q tests/sim tests/integration $(PYTEST_ARGS)

# The whole suite: normal build, then the same tests under ASan+UBSan.
check: deps
	$(MAKE) check-unit check-integration
	$(MAKE) SANITIZER=1 check-unit check-integration

clean:
	rm -rf build webhook/zcrm_webhook $(BATCH_SRC:%.c=%)

-include $(ALL_OBJ:.o=.d)
