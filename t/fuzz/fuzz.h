/*
 * fuzz.h: what the fuzz targets in t/fuzz share. Each target defines
 * LLVMFuzzerTestOneInput; under libFuzzer (make fuzz) it is linked with
 * -fsanitize=fuzzer, and for make test with replay.c, which feeds it the
 * files of t/fuzz/corpus/<target> and t/fuzz/regress/<target>.
 *
 * A target reports a broken property with fuzz_fail(): it prints why and
 * aborts, which both libFuzzer and the replay count as a crash.
 */
#ifndef CR_FUZZ_H
#define CR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- the Lua targets (lua.c in this directory) ---- */

typedef struct lua_State lua_State;

/* A Lua state set up as corrald sets up the config's: standard libraries,
 * the JIT off, corral's modules from the source tree (CR_FUZZ_LUADIR) and
 * corral.core from bindings.c, with a plain pcall standing in for
 * lua.c's budget_call. Under libFuzzer, the Lua lines run feed its
 * coverage, so that inputs reaching new branches of the Lua parsers are
 * kept like those reaching new C code. */
lua_State *fuzz_lua_new(void);

#endif
