# corral: build, run, test, install. Settings live in config.mk.
include config.mk

ifeq ($(SANITIZE),1)
O = build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
O = build
SANFLAGS =
endif

# Dependencies are looked up when a recipe needs them (recursive variables),
# so that `make run` can install the packages first and then find them.
dep_cflags = $(shell pkg-config --cflags luajit libsystemd)
dep_libs = $(shell pkg-config --libs luajit libsystemd) -lev -lm

CR_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	-DCR_VERSION='"$(VERSION)"' -DCR_DATADIR='"$(DATADIR)"' \
	$(dep_cflags) $(SANFLAGS) $(CFLAGS)
CR_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

SRC = $(filter-out daemon/corralctl.c,$(wildcard daemon/*.c))
OBJ = $(SRC:daemon/%.c=$(O)/%.o)
CTL_OBJ = $(O)/corralctl.o $(O)/json.o
HDR = $(wildcard daemon/*.h)

all: $(O)/corrald $(O)/corralctl $(O)/corral.service $(O)/corral@.service

$(O)/corralctl: $(O)/.deps-ok $(CTL_OBJ)
	$(CC) -o $@ $(CTL_OBJ) $(CR_LDFLAGS)

# unit files with this build's paths
$(O)/%.service: contrib/%.service.in config.mk
	@mkdir -p $(O)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

$(O)/corrald: $(O)/.deps-ok $(OBJ)
	$(CC) -o $@ $(OBJ) $(CR_LDFLAGS) $(dep_libs)

$(O)/%.o: daemon/%.c $(HDR) $(O)/.flags
	$(CC) $(CR_CFLAGS) -c -o $@ $<

# Rebuild when the flags change (e.g. `make install PREFIX=...` after
# `make`: the data directory is compiled in).
$(O)/.flags: $(O)/.deps-ok FORCE
	@echo '$(CC) $(CR_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CR_CFLAGS)' > $@

# Fail early, naming the Debian package that is missing.
$(O)/.deps-ok:
	@mkdir -p $(O)
	@pkg-config --version >/dev/null 2>&1 || { echo "missing pkg-config (Debian package pkg-config; or run: make deps)" >&2; exit 1; }
	@pkg-config --exists luajit || { echo "missing LuaJIT (Debian package libluajit-5.1-dev; or run: make deps)" >&2; exit 1; }
	@pkg-config --exists libsystemd || { echo "missing libsystemd (Debian package libsystemd-dev; or run: make deps)" >&2; exit 1; }
	@printf '#include <ev.h>\nint main(void){return ev_version_major()<4;}\n' | \
		$(CC) -x c - -o $(O)/.ev-check -lev 2>/dev/null || { echo "missing libev (Debian package libev-dev; or run: make deps)" >&2; exit 1; }
	@rm -f $(O)/.ev-check
	@touch $@

deps:
	@contrib/install-deps build

test-deps:
	@contrib/install-deps test

run: deps
	@$(MAKE) --no-print-directory all
	$(O)/corrald -c contrib/examples/hello.lua

# The host suite, then the VM suite (a real systemd and every cgroup v2
# controller, one boot; it reports one clear skip where no VM can run).
test: test-host test-vm

test-host: test-deps
	@$(MAKE) --no-print-directory all
	CORRALD=$(CURDIR)/$(O)/corrald CORRALCTL=$(CURDIR)/$(O)/corralctl prove -v t/

test-vm: test-deps
	prove -v t/vm/run-suite

# The chaos test (t/chaos/chaos.pl): DURATION seconds (default 300) of
# random kills, reloads and control commands; SEED=N repeats a run.
chaos: test-deps
	@$(MAKE) --no-print-directory all
	CORRALD=$(CURDIR)/$(O)/corrald CORRALCTL=$(CURDIR)/$(O)/corralctl \
		perl t/chaos/chaos.pl --duration $(or $(DURATION),300) $(if $(SEED),--seed $(SEED))

# Speed and memory figures: medians and ratios against a baseline measured
# in the same run (the machines are shared and noisy).
bench: deps
	@$(MAKE) --no-print-directory all
	$(CC) -O2 -o $(O)/forkbench t/bench/forkbench.c
	perl t/bench/spawn.pl $(O)/corrald $(O)/forkbench 1000 5
	perl t/bench/cow.pl $(O)/corrald 200 8 3

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/lua/corral \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/corral $(DESTDIR)$(DATADIR)/examples
	install -m 755 $(O)/corrald $(DESTDIR)$(SBINDIR)/corrald
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(O)/corralctl $(DESTDIR)$(BINDIR)/corralctl
	install -m 644 lua/corral/*.lua $(DESTDIR)$(DATADIR)/lua/corral/
	install -m 644 doc/corrald.8 $(DESTDIR)$(MANDIR)/man8/corrald.8
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 doc/corralctl.1 $(DESTDIR)$(MANDIR)/man1/corralctl.1
	install -m 644 contrib/corralctl.bash $(DESTDIR)$(BASHCOMPDIR)/corralctl
	install -m 644 doc/corral.lua.5 $(DESTDIR)$(MANDIR)/man5/corral.lua.5
	install -m 644 contrib/examples/*.lua $(DESTDIR)$(DATADIR)/examples/
	install -d $(DESTDIR)$(UNITDIR)
	install -m 644 $(O)/corral.service $(O)/corral@.service $(DESTDIR)$(UNITDIR)/
	install -d $(DESTDIR)$(DATADIR)/doc $(DESTDIR)$(DATADIR)/plugins
	install -m 644 doc/*.md $(DESTDIR)$(DATADIR)/doc/
	[ -z "$$(ls plugins/*.lua 2>/dev/null)" ] || install -m 644 plugins/*.lua $(DESTDIR)$(DATADIR)/plugins/
	[ -e $(DESTDIR)$(SYSCONFDIR)/corral/corral.lua ] || \
		install -m 644 contrib/examples/hello.lua $(DESTDIR)$(SYSCONFDIR)/corral/corral.lua

uninstall:
	rm -f $(DESTDIR)$(UNITDIR)/corral.service $(DESTDIR)$(UNITDIR)/corral@.service
	rm -f $(DESTDIR)$(SBINDIR)/corrald $(DESTDIR)$(BINDIR)/corralctl \
		$(DESTDIR)$(MANDIR)/man1/corralctl.1 $(DESTDIR)$(BASHCOMPDIR)/corralctl $(DESTDIR)$(MANDIR)/man8/corrald.8 \
		$(DESTDIR)$(MANDIR)/man5/corral.lua.5
	rm -rf $(DESTDIR)$(DATADIR)
	@echo "left in place: $(DESTDIR)$(SYSCONFDIR)/corral (your configuration)"

clean:
	rm -rf build

FORCE:
.PHONY: FORCE all bench chaos deps test-host test-vm test-deps run test install uninstall clean
