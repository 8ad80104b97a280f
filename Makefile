# corral: build, run, test, install. Settings live in config.mk.
include config.mk

ifeq ($(SANITIZE),1)
O = build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DCR_CHECK_COUNTS
else
O = build
SANFLAGS =
endif

# Dependencies are looked up when a recipe needs them (recursive variables),
# so that `make run` can install the packages first and then find them.
dep_cflags = $(shell pkg-config --cflags luajit libsystemd libcap libmicrohttpd libcurl)
dep_libs = $(shell pkg-config --libs luajit libsystemd libcap) -lev -lm -ldl

CR_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	-DCR_VERSION='"$(VERSION)"' -DCR_DATADIR='"$(DATADIR)"' \
	$(dep_cflags) $(SANFLAGS) $(CFLAGS)
# -z now: symbols bound once at start, not again in every forked worker
CR_LDFLAGS = -Wl,-z,now -Wl,-z,relro $(SANFLAGS) $(LDFLAGS)

SRC = $(filter-out daemon/corralctl.c daemon/ctljson.c,$(wildcard daemon/*.c))
OBJ = $(SRC:daemon/%.c=$(O)/%.o)
CTL_OBJ = $(O)/corralctl.o $(O)/ctljson.o $(O)/json.o $(O)/text.o
HDR = $(wildcard daemon/*.h)

all: $(O)/corrald $(O)/corralctl $(O)/corral.service $(O)/corral@.service $(O)/user/corral.service

$(O)/corralctl: $(O)/.deps-ok $(CTL_OBJ)
	$(CC) -o $@ $(CTL_OBJ) $(CR_LDFLAGS)

# unit files with this build's paths
$(O)/%.service: contrib/%.service.in config.mk
	@mkdir -p $(O)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

# the user service (systemctl --user): corral.service in the user unit directory
$(O)/user/corral.service: contrib/corral-user.service.in config.mk
	@mkdir -p $(O)/user
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $< > $@

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
	@pkg-config --exists libcap || { echo "missing libcap (Debian package libcap-dev; or run: make deps)" >&2; exit 1; }
	@pkg-config --exists libmicrohttpd || { echo "missing libmicrohttpd (Debian package libmicrohttpd-dev; or run: make deps)" >&2; exit 1; }
	@pkg-config --exists libcurl || { echo "missing libcurl (Debian package libcurl4-openssl-dev; or run: make deps)" >&2; exit 1; }
	@printf '#include <ev.h>\nint main(void){return ev_version_major()<4;}\n' | \
		$(CC) -x c - -o $(O)/.ev-check -lev 2>/dev/null || { echo "missing libev (Debian package libev-dev; or run: make deps)" >&2; exit 1; }
	@rm -f $(O)/.ev-check
	@touch $@

deps:
	@contrib/install-deps build

test-deps:
	@contrib/install-deps test

# make run ARGS="-g /mine -s /tmp/mine.sock": ARGS go to corrald
run: deps
	@$(MAKE) --no-print-directory all
	$(O)/corrald -c contrib/examples/hello.lua $(ARGS)

# The host suite, then the VM suite (a real systemd and every cgroup v2
# controller, one boot; it reports one clear skip where no VM can run).
test: test-host test-vm

test-host: test-deps
	@$(MAKE) --no-print-directory all fuzz-replay $(O)/luapat-diff $(BENCH_TOOLS)
	CORRALD=$(CURDIR)/$(O)/corrald CORRALCTL=$(CURDIR)/$(O)/corralctl \
		CORRAL_FUZZ_REPLAY=$(CURDIR)/$(O) CORRAL_LUAPAT_DIFF=$(CURDIR)/$(O)/luapat-diff prove -v t/

# The plugins' unit tests, through the plugin kit (lua/corral/testing.lua):
# no corrald, no root, a second or so. make test-host runs them too.
test-plugins:
	prove -v t/115-plugin-kit.t

# luapat.c against LuaJIT's own pattern functions (t/064)
$(O)/luapat-diff: t/luapat/diff.c $(O)/luapat.o $(O)/.flags
	$(CC) $(CR_CFLAGS) -Idaemon -o $@ t/luapat/diff.c $(O)/luapat.o $(CR_LDFLAGS) $(dep_libs)

# The Console formatter prints the guest's TAP as it comes: prove's default
# when its output is not a terminal holds a file's output until it ends,
# and the whole VM suite is one file to prove.
test-vm: test-deps
	prove --formatter TAP::Formatter::Console -v t/vm/run-suite

# The chaos test (t/chaos/chaos.pl): DURATION seconds (default 300) of
# random kills, reloads and control commands; SEED=N repeats a run.
chaos: test-deps
	@$(MAKE) --no-print-directory all
	CORRALD=$(CURDIR)/$(O)/corrald CORRALCTL=$(CURDIR)/$(O)/corralctl \
		perl t/chaos/chaos.pl --duration $(or $(DURATION),300) $(if $(SEED),--seed $(SEED))

# Speed and memory figures (t/bench/bench.pl, doc/performance.md): each
# against a baseline measured in the same run (the machines are shared and
# noisy). QUICK=1: a reduced run, under a minute. JSON to BENCH_JSON.
BENCH_JSON ?= $(O)/bench.json
BENCH_TOOLS = $(O)/bench-bare $(O)/bench-ready
bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_TOOLS)
	perl t/bench/bench.pl $(if $(filter 1,$(QUICK)),--quick) --json $(BENCH_JSON) \
		--corrald $(O)/corrald --corralctl $(O)/corralctl --bare $(O)/bench-bare --ready $(O)/bench-ready

# the benchmarks' baseline supervisor and worker (t/bench/bare.c, ready.c)
$(O)/bench-%: t/bench/%.c
	@mkdir -p $(O)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -o $@ $<

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
	install -d $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 644 contrib/corralctl.zsh $(DESTDIR)$(ZSHCOMPDIR)/_corralctl
	install -m 644 contrib/corralctl.fish $(DESTDIR)$(FISHCOMPDIR)/corralctl.fish
	install -m 644 doc/corral.lua.5 $(DESTDIR)$(MANDIR)/man5/corral.lua.5
	install -m 644 contrib/examples/*.lua $(DESTDIR)$(DATADIR)/examples/
	install -d $(DESTDIR)$(DATADIR)/examples/plugins
	install -m 644 contrib/examples/plugins/*.lua $(DESTDIR)$(DATADIR)/examples/plugins/
	install -m 644 contrib/logrotate/corral $(DESTDIR)$(DATADIR)/examples/corral.logrotate
	install -d $(DESTDIR)$(UNITDIR)
	install -m 644 $(O)/corral.service $(O)/corral@.service $(DESTDIR)$(UNITDIR)/
	install -d $(DESTDIR)$(USERUNITDIR)
	install -m 644 $(O)/user/corral.service $(DESTDIR)$(USERUNITDIR)/corral.service
	install -d $(DESTDIR)$(DATADIR)/doc $(DESTDIR)$(DATADIR)/plugins
	install -m 644 doc/*.md $(DESTDIR)$(DATADIR)/doc/
	[ -z "$$(ls plugins/*.lua 2>/dev/null)" ] || install -m 644 plugins/*.lua $(DESTDIR)$(DATADIR)/plugins/
	[ -e $(DESTDIR)$(SYSCONFDIR)/corral/corral.lua ] || \
		install -m 644 contrib/examples/hello.lua $(DESTDIR)$(SYSCONFDIR)/corral/corral.lua

uninstall:
	rm -f $(DESTDIR)$(UNITDIR)/corral.service $(DESTDIR)$(UNITDIR)/corral@.service
	rm -f $(DESTDIR)$(USERUNITDIR)/corral.service
	rm -f $(DESTDIR)$(SBINDIR)/corrald $(DESTDIR)$(BINDIR)/corralctl \
		$(DESTDIR)$(MANDIR)/man1/corralctl.1 $(DESTDIR)$(BASHCOMPDIR)/corralctl $(DESTDIR)$(MANDIR)/man8/corrald.8 \
		$(DESTDIR)$(ZSHCOMPDIR)/_corralctl $(DESTDIR)$(FISHCOMPDIR)/corralctl.fish \
		$(DESTDIR)$(MANDIR)/man5/corral.lua.5
	rm -rf $(DESTDIR)$(DATADIR)
	@echo "left in place: $(DESTDIR)$(SYSCONFDIR)/corral (your configuration)"

clean:
	rm -rf build

# ---- fuzzing: t/fuzz, see doc/hacking.md "Fuzzing" --------------------------
#
# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="json notify"]: each target built
# with clang and libFuzzer in build/fuzz, then run for FUZZ_SECONDS on its
# work corpus build/fuzz/corpus-TARGET (the seeds of t/fuzz/corpus/TARGET
# copied in; t/fuzz/regress/TARGET read too). A crash leaves its input as
# build/fuzz/crash-TARGET-* and fails the run.
#
# The same sources build with the ordinary compiler as replay programs
# ($(O)/fuzz-replay-TARGET, t/fuzz/replay.c), which make test-host runs
# over the seeds and regression cases (t/070-fuzz-replay.t).

FUZZ_TARGETS = json control notify units config luapat
FUZZ_SECONDS = 60
FUZZ_CC = clang
FZ = build/fuzz
FUZZ_DEFS = -I$(CURDIR)/daemon -DCR_FUZZ_LUADIR='"$(CURDIR)/lua"' -DCR_FUZZ_DIR='"$(CURDIR)/t/fuzz"'
FUZZ_CFLAGS = -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -DCR_VERSION='"$(VERSION)"' \
	-DCR_DATADIR='"$(DATADIR)"' -DCR_FUZZ_LIBFUZZER -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined

# What each target links besides its own t/fuzz/TARGET.c and common.c:
# objects of daemon/ (fuzz_d_) and of t/fuzz (fuzz_t_). control.c
# includes daemon/control.c and stubs what it calls. The Lua targets take
# the whole daemon but main.c, for corral.core's bindings.
fuzz_all_daemon = $(filter-out main,$(SRC:daemon/%.c=%))
fuzz_d_json = json
fuzz_d_notify = notify log text unixmsg
fuzz_d_control = json text log
fuzz_d_units = $(fuzz_all_daemon)
fuzz_t_units = lua
fuzz_d_config = $(fuzz_all_daemon)
fuzz_t_config = lua
fuzz_d_luapat = luapat
# longest input each target is given
fuzz_len_json = 1024
fuzz_len_control = 1024
fuzz_len_notify = 4096
fuzz_len_units = 512
fuzz_len_config = 2048
fuzz_len_luapat = 256

define fuzz_rules
$(O)/fuzz-replay-$(1): $(O)/replay/$(1).o $(O)/replay/replay.o $(O)/replay/common.o \
		$(fuzz_t_$(1):%=$(O)/replay/%.o) $(fuzz_d_$(1):%=$(O)/%.o)
	$$(CC) -o $$@ $$^ $$(CR_LDFLAGS) $$(dep_libs)

$(FZ)/$(1): $(FZ)/t/$(1).o $(FZ)/t/common.o $(fuzz_t_$(1):%=$(FZ)/t/%.o) $(fuzz_d_$(1):%=$(FZ)/d/%.o)
	$$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $$@ $$^ $$(dep_libs)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rules,$(t))))

fuzz-replay: $(FUZZ_TARGETS:%=$(O)/fuzz-replay-%)

$(O)/replay/%.o: t/fuzz/%.c t/fuzz/fuzz.h $(HDR) $(O)/.flags
	@mkdir -p $(O)/replay
	$(CC) $(CR_CFLAGS) $(FUZZ_DEFS) -c -o $@ $<

$(FZ)/d/%.o: daemon/%.c $(HDR)
	@mkdir -p $(FZ)/d
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(dep_cflags) -c -o $@ $<

$(FZ)/t/%.o: t/fuzz/%.c t/fuzz/fuzz.h $(HDR) daemon/control.c
	@mkdir -p $(FZ)/t
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_DEFS) $(dep_cflags) -c -o $@ $<

fuzz-deps:
	@contrib/install-deps fuzz

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(O)/.deps-ok $(FUZZ_TARGETS:%=$(FZ)/%)
	@$(MAKE) --no-print-directory -k $(FUZZ_TARGETS:%=fuzz-run-%)

# one target: its seeds join the work corpus (never written back)
fuzz-run-%: $(FZ)/%
	@mkdir -p $(FZ)/corpus-$*
	@cp -n t/fuzz/corpus/$*/* $(FZ)/corpus-$*/
	@echo "fuzz: $* for $(FUZZ_SECONDS)s (log: $(FZ)/$*.log)"
	@$(FZ)/$* -max_total_time=$(FUZZ_SECONDS) -max_len=$(fuzz_len_$*) -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FZ)/crash-$*- \
		$(FZ)/corpus-$* t/fuzz/regress/$* > $(FZ)/$*.log 2>&1 || \
		{ tail -n 40 $(FZ)/$*.log; echo "fuzz: $* crashed; its input: $(FZ)/crash-$*-*" >&2; exit 1; }
	@grep -E '^stat::(number_of_executed_units|new_units_added)' $(FZ)/$*.log

FORCE:
.PHONY: FORCE fuzz fuzz-deps fuzz-replay all bench chaos deps test-host test-vm test-deps test-plugins run test install uninstall clean
