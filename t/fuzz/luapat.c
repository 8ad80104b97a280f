/*
 * luapat.c (t/fuzz): daemon/luapat.c against LuaJIT's own string.find,
 * match, gmatch and gsub, differential and coverage-guided (t/luapat/
 * diff.c does the same with random cases). One state holds both sets:
 * LuaJIT's in the table N, luapat's in string (cr_luapat_install). Every
 * input is run through both under pcall; the results, or the error
 * messages, turned into text, must be the same.
 *
 * Input: three header bytes, then subject 0xff pattern 0xff replacement
 * (missing parts are empty; NUL bytes are kept).
 *   byte 0: bits 0-2 the function, op_name[] (find, find plain, match,
 *           gmatch, gsub; 5-7 wrap around); bits 3-5 gsub's replacement,
 *           repl_kind below.
 *   byte 1: init for find and match: < 0x80 gives (b % 64) - 24, so
 *           -24..39; 0xf0-0xff one of edge[] (past 32 bits, fractions,
 *           infinities, NaN); else nil.
 *   byte 2: gsub's max n: < 0x80 gives (b % 8) - 2, so -2..5; 0xf0-0xff
 *           one of edge[]; else nil.
 * FUZZ_VERBOSE=1 in the environment prints LuaJIT's results of each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "luapat.h"
#include "fuzz.h"

/*
 * LuaJIT's matcher has no budget, and backtracks: q quantifiers over a
 * subject of n bytes try about C(n+q, q) ways to split it at each of the
 * n starting points (and gmatch and gsub go through them all). With
 * n = 48 and q = 4 that is at most ~13 million steps, a fraction of a
 * second for both matchers together even under ASan, where q = 5 or
 * n = 256 would allow minutes. '?' only doubles, but is counted too: it
 * keeps the rule simple. Counted are every '*', '+', '-' and '?' not
 * right after a '%' (so also a '-' of a range, or one meant literally:
 * over-counting only makes the cap safer). Inputs over the cap are
 * skipped; %b, %f and back-references are linear and left alone.
 */
#define MAX_SUBJECT 48
#define MAX_QUANTIFIERS 4
#define MAX_GMATCH 50

/* numbers where the conversion to an integer matters: LuaJIT reads
 * find's init as an int32_t, gsub's max n as an int */
static const double edge[16] = {
	2147483647.0, 2147483648.0, 2147483651.0, 4294967296.0, 4294967298.0, 4294967299.0,
	-2147483648.0, -2147483649.0, -4294967297.0, 9007199254740992.0, 1099511627778.0,
	1.5, -1.5, 2.9, 1.0 / 0.0, -1.0 / 0.0,
};

enum { OP_FIND, OP_FIND_PLAIN, OP_MATCH, OP_GMATCH, OP_GSUB, NOPS };
static const char *const op_name[NOPS] = { "find", "find", "match", "gmatch", "gsub" };

/* gsub's replacement, by bits 3-5 of byte 0: the string of the input,
 * that string as a number (or 12), a table, or a function returning
 * its first argument (a capture or the match), false, nil, a table (an
 * error), or how many arguments it got. */
static const char setup[] =
	"N = {}\n"
	"for _, n in ipairs { 'find', 'match', 'gmatch', 'gsub' } do N[n] = string[n] end\n"
	"if jit then jit.off() end\n"
	"return {\n"
	"  { a = 'A', b = false, c = {}, d = 7, [''] = 'E', [1] = 'one', [3] = false, ['%'] = '%1' },\n"
	"  function(...) return (...) end,\n"
	"  function() return false end,\n"
	"  function() return nil end,\n"
	"  function() return {} end,\n"
	"  function(...) return select('#', ...) end,\n"
	"}\n";

static lua_State *L;
static int repls;	/* registry: the table and functions of setup */

static void init(void)
{
	if (!(L = luaL_newstate()))
		fuzz_fail("no Lua state");
	luaL_openlibs(L);
	if (luaL_loadstring(L, setup) || lua_pcall(L, 0, 1, 0))
		fuzz_fail("setup: %s", lua_tostring(L, -1));
	repls = luaL_ref(L, LUA_REGISTRYINDEX);
	cr_luapat_install(L);	/* after N took LuaJIT's own */
}

struct text {
	char *s;
	size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		if (!(t->s = realloc(t->s, t->cap)))
			fuzz_fail("out of memory");
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = 0;
}

static void puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

/* bytes as a quoted string, \xHH for what is not printable ASCII */
static void put_quoted(struct text *t, const char *s, size_t n)
{
	char hex[8];

	put(t, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			snprintf(hex, sizeof hex, "\\x%02x", c);
			puts_(t, hex);
		} else {
			put(t, s + i, 1);
		}
	}
	put(t, "\"", 1);
}

static void put_value(struct text *t, int idx)
{
	char num[40];
	size_t n;
	const char *s;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		put_quoted(t, s, n);
		break;
	case LUA_TNUMBER:
		snprintf(num, sizeof num, "%.17g", lua_tonumber(L, idx));
		puts_(t, num);
		break;
	case LUA_TBOOLEAN:
		puts_(t, lua_toboolean(L, idx) ? "true" : "false");
		break;
	default:
		puts_(t, lua_typename(L, lua_type(L, idx)));
		break;
	}
}

/* An error message, without a leading "file:line: ". */
static void put_error(struct text *t)
{
	size_t n;
	const char *s = lua_tolstring(L, -1, &n), *p;

	if (!s) {
		puts_(t, "error object ");
		put_value(t, -1);
		return;
	}
	if ((p = memchr(s, ':', n)) && p + 1 < s + n && p[1] >= '0' && p[1] <= '9') {
		p++;
		while (p < s + n && *p >= '0' && *p <= '9')
			p++;
		if (s + n - p >= 2 && p[0] == ':' && p[1] == ' ') {
			n -= (size_t)(p + 2 - s);
			s = p + 2;
		}
	}
	puts_(t, "error ");
	put_quoted(t, s, n);
}

/* Calls the function at the top with the nargs values below it; their
 * results (or error) joined, appended to t. Pops everything. */
static int call(struct text *t, int nargs)
{
	int base = lua_gettop(L) - nargs - 1;

	if (lua_pcall(L, nargs, LUA_MULTRET, 0)) {
		put_error(t);
		lua_settop(L, base);
		return -1;
	}
	for (int i = base + 1; i <= lua_gettop(L); i++) {
		if (i > base + 1)
			puts_(t, ", ");
		put_value(t, i);
	}
	lua_settop(L, base);
	return 0;
}

struct input {
	int op, repl_kind, has_init, has_max;
	double init, max;
	const char *s, *p, *r;
	size_t ls, lp, lr;
};

/* One run of op with the functions of table `set` (a global). */
static void run(struct text *t, const struct input *in, const char *set)
{
	int nargs = 2;

	lua_getglobal(L, set);
	lua_getfield(L, -1, op_name[in->op]);
	lua_remove(L, -2);
	lua_pushlstring(L, in->s, in->ls);
	lua_pushlstring(L, in->p, in->lp);
	switch (in->op) {
	case OP_FIND:
	case OP_FIND_PLAIN:
	case OP_MATCH:
		if (in->has_init)
			lua_pushnumber(L, in->init);
		else
			lua_pushnil(L);
		nargs++;
		if (in->op == OP_FIND_PLAIN) {
			lua_pushboolean(L, 1);
			nargs++;
		}
		call(t, nargs);
		return;
	case OP_GMATCH: {
		int base = lua_gettop(L) - 3;

		if (lua_pcall(L, nargs, 1, 0)) {
			put_error(t);
			lua_settop(L, base);
			return;
		}
		puts_(t, "iterator");
		/* as a for loop: until an error, no value or a first nil */
		for (int i = 0; i < MAX_GMATCH; i++) {
			puts_(t, " | ");
			lua_pushvalue(L, -1);
			if (lua_pcall(L, 0, LUA_MULTRET, 0)) {
				put_error(t);
				break;
			}
			int got = lua_gettop(L) - base - 1;
			for (int k = 1; k <= got; k++) {
				if (k > 1)
					puts_(t, ", ");
				put_value(t, base + 1 + k);
			}
			int stop = !got || lua_isnil(L, base + 2);
			lua_settop(L, base + 1);
			if (stop)
				break;
		}
		lua_settop(L, base);
		return;
	}
	case OP_GSUB:
		switch (in->repl_kind) {
		case 0:
			lua_pushlstring(L, in->r, in->lr);
			break;
		case 1:
			lua_pushlstring(L, in->r, in->lr);
			if (lua_isnumber(L, -1)) {
				lua_Number n = lua_tonumber(L, -1);
				lua_pop(L, 1);
				lua_pushnumber(L, n);
			} else {
				lua_pop(L, 1);
				lua_pushinteger(L, 12);
			}
			break;
		default:
			lua_rawgeti(L, LUA_REGISTRYINDEX, repls);
			lua_rawgeti(L, -1, in->repl_kind - 1);
			lua_remove(L, -2);
			break;
		}
		nargs++;
		if (in->has_max) {
			lua_pushnumber(L, in->max);
			nargs++;
		}
		call(t, nargs);
		return;
	}
}

/* the next part of the input, up to a 0xff byte or the end */
static const char *part(const uint8_t **d, const uint8_t *end, size_t *len)
{
	const uint8_t *start = *d, *sep = memchr(start, 0xff, (size_t)(end - start));

	if (!sep)
		sep = end;
	*len = (size_t)(sep - start);
	*d = sep < end ? sep + 1 : end;
	return (const char *)start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in;
	struct text a = { 0 }, b = { 0 };
	const uint8_t *d = data + 3, *end = data + size;
	int quantifiers = 0;

	if (size < 3)
		return 0;
	if (!L)
		init();
	in.op = (data[0] & 7) % NOPS;
	in.repl_kind = (data[0] >> 3) & 7;
	in.has_init = data[1] < 0x80 || data[1] >= 0xf0;
	in.init = data[1] < 0x80 ? data[1] % 64 - 24 : edge[data[1] & 15];
	in.has_max = data[2] < 0x80 || data[2] >= 0xf0;
	in.max = data[2] < 0x80 ? data[2] % 8 - 2 : edge[data[2] & 15];
	in.s = part(&d, end, &in.ls);
	in.p = part(&d, end, &in.lp);
	in.r = part(&d, end, &in.lr);
	if (in.ls > MAX_SUBJECT)
		return 0;
	for (size_t i = 0; i < in.lp; i++) {
		if (in.p[i] == '%')
			i++;
		else if (strchr("*+-?", in.p[i]) && in.p[i])
			quantifiers++;
	}
	if (quantifiers > MAX_QUANTIFIERS)
		return 0;

	run(&a, &in, "N");
	run(&b, &in, "string");
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "%s: %s\n", op_name[in.op], a.s);
	if (a.len != b.len || memcmp(a.s, b.s, a.len)) {
		struct text args = { 0 }, repl = { 0 };
		put_quoted(&args, in.s, in.ls);
		puts_(&args, ", ");
		put_quoted(&args, in.p, in.lp);
		put_quoted(&repl, in.r, in.lr);
		fuzz_fail("%s%s(%s) init %s%.17g max %s%.17g repl %d %s\n  luajit: %s\n  luapat: %s",
			  op_name[in.op], in.op == OP_FIND_PLAIN ? " plain" : "", args.s,
			  in.has_init ? "" : "nil/", in.init, in.has_max ? "" : "nil/", in.max,
			  in.repl_kind, repl.s, a.s ? a.s : "", b.s ? b.s : "");
	}
	free(a.s);
	free(b.s);
	lua_settop(L, 0);
	return 0;
}
