# corral build configuration: edit to taste, or override on the command line
# (make PREFIX=/usr CC=clang). User CFLAGS and LDFLAGS are appended to what
# the Makefile needs, never replace it.

VERSION = 0.1.0

PREFIX  = /usr/local
SBINDIR = $(PREFIX)/sbin
BINDIR  = $(PREFIX)/bin
DATADIR = $(PREFIX)/share/corral
MANDIR  = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
# where Debian's zsh looks: site-functions below /usr/local, vendor-completions below /usr
ZSHCOMPDIR = $(PREFIX)/share/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d
SYSCONFDIR = /etc
# systemd's unit directory (pkg-config systemd), /lib/systemd/system on Debian
UNITDIR = $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
# the user manager's unit directory, for the user service
USERUNITDIR = $(shell pkg-config --variable=systemduserunitdir systemd 2>/dev/null || echo /usr/lib/systemd/user)
DESTDIR =

CC      = cc
CFLAGS  = -O2 -g
LDFLAGS =

# make SANITIZE=1: AddressSanitizer + UBSan build in build/asan
SANITIZE =
