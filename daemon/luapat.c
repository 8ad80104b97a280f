/*
 * luapat.c: string.find, match, gmatch and gsub for Lua run inside
 * corrald, with the same results and errors as LuaJIT's, but with a time
 * budget. A C function is out of reach of the count hook that stops a
 * Lua loop, and Lua patterns backtrack: ("a"):rep(40):find("a*a*a*a*b")
 * runs for hours. Here the matcher counts its steps and asks, every so
 * often, whether the caller's budget is spent; then it raises an error
 * like the hook's. Prototypes and workers get LuaJIT's own functions
 * back (lua.c): no budget applies there.
 *
 * Written from the reference manual's description of patterns (Lua 5.1
 * with LuaJIT's extensions: %g, %f, \0 in patterns).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "luapat.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200		/* recursion, as LuaJIT's "pattern too complex" */
#define CAP_OPEN (-1)		/* a capture not closed yet */
#define CAP_POSITION (-2)	/* a () capture */
#define CHECK_EVERY 1024	/* steps between looks at the clock */

static double (*over_budget)(void);

struct matcher {
	lua_State *L;
	const char *src, *src_end;
	const char *pat_end;
	int level, depth;
	unsigned long steps;
	struct { const char *start; ptrdiff_t len; } cap[MAX_CAPTURES];
};

/* One step of work: every CHECK_EVERY, the budget. */
static void step(struct matcher *m)
{
	double budget;

	if (++m->steps % CHECK_EVERY == 0 && over_budget && (budget = over_budget()) > 0)
		luaL_error(m->L, "pattern matching took longer than %gs, stopped", budget);
}

/* Past the single-character class at p (a char, %x or [set]). */
static const char *class_end(struct matcher *m, const char *p)
{
	char c = *p++;

	if (c == '%') {
		if (p >= m->pat_end)
			luaL_error(m->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c == '[') {
		if (p < m->pat_end && *p == '^')
			p++;
		do {	/* a ']' first in the set is a plain character */
			if (p >= m->pat_end)
				luaL_error(m->L, "malformed pattern (missing ']')");
			c = *p++;
			if (c == '%' && p < m->pat_end)
				p++;
		} while (p >= m->pat_end || *p != ']');
		return p + 1;
	}
	return p;
}

static int class_has(int c, int cl)
{
	int yes;

	switch (tolower(cl)) {
	case 'a': yes = isalpha(c); break;
	case 'c': yes = iscntrl(c); break;
	case 'd': yes = isdigit(c); break;
	case 'g': yes = isgraph(c); break;
	case 'l': yes = islower(c); break;
	case 'p': yes = ispunct(c); break;
	case 's': yes = isspace(c); break;
	case 'u': yes = isupper(c); break;
	case 'w': yes = isalnum(c); break;
	case 'x': yes = isxdigit(c); break;
	case 'z': yes = c == 0; break;
	default: return cl == c;
	}
	return isupper(cl) ? !yes : !!yes;
}

/* Is c in the set [p .. close), p at its '['? */
static int set_has(int c, const char *p, const char *close)
{
	int want = 1;

	if (*++p == '^') {
		want = 0;
		p++;
	}
	while (p < close) {
		if (*p == '%') {	/* may escape the closing ']' itself, as in LuaJIT */
			if (class_has(c, (unsigned char)p[1]))
				return want;
			p += 2;
		} else if (p + 2 < close && p[1] == '-') {
			if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
				return want;
			p += 3;
		} else {
			if ((unsigned char)*p == c)
				return want;
			p++;
		}
	}
	return !want;
}

static int single(struct matcher *m, const char *s, const char *p, const char *ep)
{
	int c;

	if (s >= m->src_end)
		return 0;
	c = (unsigned char)*s;
	switch (*p) {
	case '.': return 1;
	case '%': return class_has(c, (unsigned char)p[1]);
	case '[': return set_has(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

static const char *match(struct matcher *m, const char *s, const char *p);

static const char *max_expand(struct matcher *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t i = 0;
	const char *r;

	while (single(m, s + i, p, ep)) {
		step(m);
		i++;
	}
	for (; i >= 0; i--) {
		if ((r = match(m, s + i, ep + 1)))
			return r;
	}
	return NULL;
}

static const char *min_expand(struct matcher *m, const char *s, const char *p, const char *ep)
{
	const char *r;

	for (;;) {
		if ((r = match(m, s, ep + 1)))
			return r;
		if (!single(m, s, p, ep))
			return NULL;
		step(m);
		s++;
	}
}

static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t what)
{
	const char *r;

	if (m->level >= MAX_CAPTURES)
		luaL_error(m->L, "too many captures");
	m->cap[m->level].start = s;
	m->cap[m->level].len = what;
	m->level++;
	if (!(r = match(m, s, p)))
		m->level--;
	return r;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
	int l;
	const char *r;

	for (l = m->level - 1; l >= 0 && m->cap[l].len != CAP_OPEN; l--)
		;
	if (l < 0)
		luaL_error(m->L, "invalid pattern capture");
	m->cap[l].len = s - m->cap[l].start;
	if (!(r = match(m, s, p)))
		m->cap[l].len = CAP_OPEN;
	return r;
}

static const char *balanced(struct matcher *m, const char *s, const char *p)
{
	int depth = 1;

	if (p + 1 >= m->pat_end)
		luaL_error(m->L, "unbalanced pattern");
	if (s >= m->src_end || *s != p[0])
		return NULL;
	while (++s < m->src_end) {
		step(m);
		if (*s == p[1]) {
			if (--depth == 0)
				return s + 1;
		} else if (*s == p[0]) {
			depth++;
		}
	}
	return NULL;
}

static const char *back_reference(struct matcher *m, const char *s, int digit)
{
	int l = digit - '1';
	ptrdiff_t len;

	if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
		luaL_error(m->L, "invalid capture index");
	len = m->cap[l].len;
	if (len >= 0 && m->src_end - s >= len && memcmp(m->cap[l].start, s, (size_t)len) == 0)
		return s + len;
	return NULL;
}

/* Where a match of p at s ends, or NULL. */
static const char *match(struct matcher *m, const char *s, const char *p)
{
	const char *ep, *r = NULL;

	if (++m->depth > MAX_DEPTH)
		luaL_error(m->L, "pattern too complex");
	step(m);
	while (p < m->pat_end) {
		switch (*p) {
		case '(':
			r = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
							     : open_capture(m, s, p + 1, CAP_OPEN);
			goto done;
		case ')':
			r = close_capture(m, s, p + 1);
			goto done;
		case '$':
			if (p + 1 == m->pat_end) {
				r = s == m->src_end ? s : NULL;
				goto done;
			}
			break;
		case '%':
			if (p + 1 >= m->pat_end)
				break;	/* class_end() reports it */
			if (p[1] == 'b') {
				if (!(s = balanced(m, s, p + 2)))
					goto done;
				p += 4;
				continue;
			}
			if (p[1] == 'f') {
				int prev, cur;
				p += 2;
				if (p >= m->pat_end || *p != '[')
					luaL_error(m->L, "missing '[' after '%%f' in pattern");
				ep = class_end(m, p);
				prev = s == m->src ? 0 : (unsigned char)s[-1];
				cur = s < m->src_end ? (unsigned char)*s : 0;
				if (set_has(prev, p, ep - 1) || !set_has(cur, p, ep - 1))
					goto done;
				p = ep;
				continue;
			}
			if (isdigit((unsigned char)p[1])) {
				if (!(s = back_reference(m, s, p[1])))
					goto done;
				p += 2;
				continue;
			}
			break;
		}
		/* a single-character class, and what follows it */
		ep = class_end(m, p);
		if (ep < m->pat_end && *ep == '?') {
			if (single(m, s, p, ep) && (r = match(m, s + 1, ep + 1)))
				goto done;
			p = ep + 1;
			continue;
		}
		if (ep < m->pat_end && *ep == '+') {
			r = single(m, s, p, ep) ? max_expand(m, s + 1, p, ep) : NULL;
			goto done;
		}
		if (ep < m->pat_end && *ep == '*') {
			r = max_expand(m, s, p, ep);
			goto done;
		}
		if (ep < m->pat_end && *ep == '-') {
			r = min_expand(m, s, p, ep);
			goto done;
		}
		if (!single(m, s, p, ep))
			goto done;
		s++;
		p = ep;
	}
	r = s;
done:
	m->depth--;
	return r;
}

/* ---- results ------------------------------------------------------------ */

static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
	if (i >= m->level) {
		if (i != 0)
			luaL_error(m->L, "invalid capture index");
		lua_pushlstring(m->L, s, (size_t)(e - s));	/* the whole match */
		return;
	}
	if (m->cap[i].len == CAP_OPEN)
		luaL_error(m->L, "unfinished capture");
	if (m->cap[i].len == CAP_POSITION)
		lua_pushinteger(m->L, m->cap[i].start - m->src + 1);
	else
		lua_pushlstring(m->L, m->cap[i].start, (size_t)m->cap[i].len);
}

/* The captures, or the whole match (s..e) when there are none and s is
 * given. */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
	int n = m->level == 0 && s ? 1 : m->level;

	luaL_checkstack(m->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(m, i, s, e);
	return n;
}

static void start(struct matcher *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
	m->L = L;
	m->src = s;
	m->src_end = s + ls;
	m->pat_end = p + lp;
	m->level = m->depth = 0;
	m->steps = 0;
}

/* A 1-based start position, negative from the end, as LuaJIT reads it:
 * as an int32_t, a number out of its range (or NaN) becoming INT32_MIN
 * as on x86-64 (2^32 + 3 is not 3 but the start), a fraction cut
 * towards zero. */
static ptrdiff_t start_at(lua_State *L, int arg, size_t len)
{
	lua_Number n = luaL_optnumber(L, arg, 1);
	ptrdiff_t i = n > -2147483649.0 && n < 2147483648.0 ? (int32_t)n : INT32_MIN;

	if (i < 0)
		i += (ptrdiff_t)len + 1;
	return i < 1 ? 1 : i;
}

static int has_specials(const char *p, size_t lp)
{
	for (size_t i = 0; i < lp; i++)
		if (memchr("^$*+?.([%-", p[i], 10))
			return 1;
	return 0;
}

static int find_or_match(lua_State *L, int find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	ptrdiff_t init = start_at(L, 3, ls) - 1;
	struct matcher m;
	const char *s1, *e;
	int anchor;

	if ((size_t)init > ls)
		init = (ptrdiff_t)ls;
	if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
		const char *at = memmem(s + init, ls - (size_t)init, p, lp);
		if (!at) {
			lua_pushnil(L);
			return 1;
		}
		lua_pushinteger(L, at - s + 1);
		lua_pushinteger(L, at - s + (ptrdiff_t)lp);
		return 2;
	}
	lp = strnlen(p, lp);	/* a pattern ends at a NUL, as in LuaJIT */
	anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	start(&m, L, s, ls, p, lp);
	s1 = s + init;
	do {
		m.level = m.depth = 0;
		if ((e = match(&m, s1, p))) {
			if (!find)
				return push_captures(&m, s1, e);
			lua_pushinteger(L, s1 - s + 1);
			lua_pushinteger(L, e - s);
			return push_captures(&m, NULL, NULL) + 2;
		}
		step(&m);
	} while (s1++ < m.src_end && !anchor);
	lua_pushnil(L);
	return 1;
}

static int l_find(lua_State *L)
{
	return find_or_match(L, 1);
}

static int l_match(lua_State *L)
{
	return find_or_match(L, 0);
}

/* upvalues: subject, pattern, next position (0-based) */
static int gmatch_next(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	ptrdiff_t pos = (ptrdiff_t)lua_tointeger(L, lua_upvalueindex(3));
	struct matcher m;
	const char *src, *e;

	start(&m, L, s, ls, p, strnlen(p, lp));
	for (src = s + pos; src <= m.src_end; src++) {
		m.level = m.depth = 0;
		if ((e = match(&m, src, p))) {
			ptrdiff_t next = e - s + (e == src);	/* past an empty match */
			lua_pushinteger(L, next);
			lua_replace(L, lua_upvalueindex(3));
			return push_captures(&m, src, e);
		}
		step(&m);
	}
	return 0;
}

static int l_gmatch(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* The replacement string, its %0-%9 and %% read. */
static void add_string(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
	size_t l;
	const char *r = lua_tolstring(m->L, 3, &l);

	for (size_t i = 0; i < l; i++) {
		if (r[i] != '%') {
			luaL_addchar(b, r[i]);
			continue;
		}
		i++;	/* a % at the very end adds the string's NUL, as LuaJIT does */
		if (!isdigit((unsigned char)r[i])) {
			luaL_addchar(b, r[i]);
		} else if (r[i] == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else {
			push_capture(m, r[i] - '1', s, e);
			luaL_addvalue(b);
		}
	}
}

static void add_value(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
	lua_State *L = m->L;

	switch (lua_type(L, 3)) {
	case LUA_TNUMBER:
	case LUA_TSTRING:
		add_string(m, b, s, e);
		return;
	case LUA_TFUNCTION:
		lua_pushvalue(L, 3);
		lua_call(L, push_captures(m, s, e), 1);
		break;
	case LUA_TTABLE:
		push_capture(m, 0, s, e);
		lua_gettable(L, 3);
		break;
	}
	if (!lua_toboolean(L, -1)) {	/* nil or false: the match stays */
		lua_pop(L, 1);
		lua_pushlstring(L, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	}
	luaL_addvalue(b);
}

static int l_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int t = lua_type(L, 3);
	/* an int, as LuaJIT's: 2^32 + 2 is 2 */
	int max = (int)luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
	const char *src = s, *e;
	struct matcher m;
	luaL_Buffer b;
	int anchor;

	luaL_argcheck(L, t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TFUNCTION || t == LUA_TTABLE,
		      3, "string/function/table expected");
	lp = strnlen(p, lp);
	anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	start(&m, L, s, ls, p, lp);
	luaL_buffinit(L, &b);
	while (n < max) {
		m.level = m.depth = 0;
		if ((e = match(&m, src, p))) {
			n++;
			add_value(&m, &b, src, e);
		}
		if (e && e > src)
			src = e;
		else if (src < m.src_end)
			luaL_addchar(&b, *src++);
		else
			break;
		if (anchor)
			break;
		step(&m);
	}
	luaL_addlstring(&b, src, (size_t)(m.src_end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

void cr_luapat_budget(double (*over)(void))
{
	over_budget = over;
}

static const struct { const char *name; lua_CFunction fn; } fns[] = {
	{ "find", l_find }, { "match", l_match }, { "gmatch", l_gmatch }, { "gsub", l_gsub },
};
#define NFNS (sizeof fns / sizeof fns[0])
#define KEPT "corral.string"	/* registry: LuaJIT's own, for children */

void cr_luapat_install(lua_State *L)
{
	lua_getglobal(L, "string");
	lua_newtable(L);
	for (size_t i = 0; i < NFNS; i++) {
		lua_getfield(L, -2, fns[i].name);
		lua_setfield(L, -2, fns[i].name);
		lua_pushcfunction(L, fns[i].fn);
		lua_setfield(L, -3, fns[i].name);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, KEPT);
	lua_pop(L, 1);
}

int cr_luapat_uninstall(lua_State *L)
{
	lua_getglobal(L, "string");
	lua_getfield(L, LUA_REGISTRYINDEX, KEPT);
	if (lua_istable(L, -1)) {
		for (size_t i = 0; i < NFNS; i++) {
			lua_getfield(L, -1, fns[i].name);
			lua_setfield(L, -3, fns[i].name);
		}
	}
	lua_pop(L, 2);
	return 0;
}
