/*
 * notify-fuzz.c: feeds cr_notify_parse() (daemon/notify.c, included whole)
 * generated datagrams and checks every result against a plain reference
 * parser written from the protocol, plus the invariants that must hold
 * for any input: no crash or out-of-bounds read (each datagram sits in a
 * heap block of exactly its size, for AddressSanitizer), status always
 * NUL-terminated and shorter than CR_NOTIFY_STATUS_MAX, a datagram with a
 * NUL byte or of no bytes always refused, *why set exactly on failure.
 *
 * usage: notify-fuzz [ITERATIONS [SEED [MAX_SECONDS]]]
 * Prints one summary line; failures (the first few in detail) on stderr;
 * exit 0 when every check held.
 *
 * Generators: random bytes; well-formed messages (known and unknown keys,
 * good and bad values) with random mutations (flipped, inserted, deleted
 * bytes, truncation, NULs); very long lines; very many lines; numbers at
 * and past the 64-bit limits.
 */
#include "../../daemon/notify.c"
#include "../../daemon/unixmsg.c"

#include <stdarg.h>
#include <time.h>

/* ---- what notify.c needs from the rest of corrald ----------------------- */

enum cr_level cr_log_level = CR_ALERT;
int cr_log_journal;

void cr_log(enum cr_level level, const struct cr_who *who, const char *fmt, ...)
{
	(void)level;
	(void)who;
	(void)fmt;
}

/* ---- randomness --------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* ---- the reference parser ----------------------------------------------- */

struct ref {
	int rc;
	int ready, stopping, reloading, watchdog, trigger, has_status, has_errno, errnum;
	char status[CR_NOTIFY_STATUS_MAX];
	uint64_t extend, wd_usec;
	long long mainpid;
	int load;
	uint64_t requests;
	unsigned unknown;
};

/* Decimal digits only, at most 20 of them, no overflow. */
static int ref_number(const char *s, size_t n, uint64_t *out)
{
	char buf[32];
	unsigned long long v;
	char *end;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno == ERANGE || *end)
		return -1;
	*out = v;
	return 0;
}

static int value_is(const char *v, size_t n, const char *what)
{
	return n == strlen(what) && memcmp(v, what, n) == 0;
}

static void ref_parse(const char *buf, size_t n, struct ref *r)
{
	size_t start = 0;

	memset(r, 0, sizeof *r);
	if (n == 0 || memchr(buf, 0, n)) {
		r->rc = -EINVAL;
		return;
	}
	while (start <= n) {
		size_t end = start;
		while (end < n && buf[end] != '\n')
			end++;
		if (end > start) {
			const char *line = buf + start, *eq = memchr(line, '=', end - start);
			size_t klen, vlen;
			const char *key = line, *val;
			uint64_t v;

			if (!eq || eq == line) {
				r->rc = -EINVAL;
				return;
			}
			klen = (size_t)(eq - line);
			val = eq + 1;
			vlen = end - start - klen - 1;
			for (size_t i = 0; i < klen; i++) {
				if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", key[i]) || key[i] == 0) {
					r->rc = -EINVAL;
					return;
				}
			}
			if (value_is(key, klen, "READY"))
				r->ready = value_is(val, vlen, "1");
			else if (value_is(key, klen, "STOPPING"))
				r->stopping = value_is(val, vlen, "1");
			else if (value_is(key, klen, "RELOADING"))
				r->reloading = value_is(val, vlen, "1");
			else if (value_is(key, klen, "STATUS")) {
				size_t keep = vlen < CR_NOTIFY_STATUS_MAX - 1 ? vlen : CR_NOTIFY_STATUS_MAX - 1;
				r->has_status = 1;
				memset(r->status, 0, sizeof r->status);
				memcpy(r->status, val, keep);
			} else if (value_is(key, klen, "WATCHDOG")) {
				if (value_is(val, vlen, "1"))
					r->watchdog = 1;
				else if (value_is(val, vlen, "trigger"))
					r->trigger = 1;
				else
					r->unknown++;
			} else if (value_is(key, klen, "EXTEND_TIMEOUT_USEC")) {
				if (ref_number(val, vlen, &v) < 0) {
					r->rc = -EINVAL;
					return;
				}
				r->extend = v;
			} else if (value_is(key, klen, "WATCHDOG_USEC")) {
				if (ref_number(val, vlen, &v) < 0 || v == 0) {
					r->rc = -EINVAL;
					return;
				}
				r->wd_usec = v;
			} else if (value_is(key, klen, "MAINPID")) {
				if (ref_number(val, vlen, &v) < 0 || v < 2 || v > 0x3fffffff) {
					r->rc = -EINVAL;
					return;
				}
				r->mainpid = (long long)v;
			} else if (value_is(key, klen, "BUSY") || value_is(key, klen, "IDLE")) {
				if (value_is(val, vlen, "1"))
					r->load = key[0] == 'B' ? CR_LOAD_BUSY : CR_LOAD_IDLE;
				else
					r->unknown++;
			} else if (value_is(key, klen, "REQUESTS")) {
				if (ref_number(val, vlen, &v) < 0 || v > 4294967295ULL) {
					r->rc = -EINVAL;
					return;
				}
				r->requests += v;
			} else if (value_is(key, klen, "ERRNO")) {
				if (ref_number(val, vlen, &v) < 0 || v > 4095) {
					r->rc = -EINVAL;
					return;
				}
				r->has_errno = 1;
				r->errnum = (int)v;
			} else {
				r->unknown++;
			}
		}
		start = end + 1;
	}
}

/* ---- checking one datagram ---------------------------------------------- */

static unsigned long checks, failures;

static void report(const char *what, const char *buf, size_t n)
{
	failures++;
	if (failures > 10)
		return;
	fprintf(stderr, "FAIL: %s; datagram of %zu bytes:", what, n);
	for (size_t i = 0; i < n && i < 96; i++)
		fprintf(stderr, (unsigned char)buf[i] >= 32 && (unsigned char)buf[i] < 127 ? "%c" : "\\x%02x",
			(unsigned char)buf[i]);
	fprintf(stderr, "%s\n", n > 96 ? "..." : "");
}

static void check(const char *data, size_t n)
{
	/* exactly n bytes on the heap: any read past them is caught */
	char *buf = malloc(n ? n : 1);
	struct cr_notify_msg m;
	const char *why = (const char *)1;
	struct ref r;
	int rc;

	if (!buf)
		abort();
	memcpy(buf, data, n);
	memset(&m, 0xa5, sizeof m);	/* parse must set every field */
	rc = cr_notify_parse(buf, n, &m, &why);
	ref_parse(data, n, &r);
	checks++;

	if (rc != 0 && rc != -EINVAL)
		report("returned neither 0 nor -EINVAL", data, n);
	if (rc == 0 && why != NULL)
		report("success with *why set", data, n);
	if (rc != 0 && (why == NULL || why == (const char *)1 || !*why))
		report("failure without *why", data, n);
	if (!memchr(m.status, 0, sizeof m.status))
		report("status not NUL-terminated within CR_NOTIFY_STATUS_MAX", data, n);
	else if (strlen(m.status) >= CR_NOTIFY_STATUS_MAX)
		report("status too long", data, n);
	if ((n == 0 || memchr(data, 0, n)) && rc == 0)
		report("a datagram that is empty or has a NUL byte parsed", data, n);
	if (rc == 0 && !m.has_status && m.status[0])
		report("status set without STATUS=", data, n);
	if (rc != r.rc) {
		report(rc ? "refused a datagram the reference takes" : "took a datagram the reference refuses", data, n);
	} else if (rc == 0) {
		if (m.ready != r.ready || m.stopping != r.stopping || m.reloading != r.reloading ||
		    m.watchdog != r.watchdog || m.watchdog_trigger != r.trigger)
			report("flags differ from the reference", data, n);
		if (m.has_status != r.has_status || strcmp(m.status, r.status))
			report("STATUS differs from the reference", data, n);
		if (m.extend_usec != r.extend || m.watchdog_usec != r.wd_usec || (long long)m.mainpid != r.mainpid)
			report("numbers differ from the reference", data, n);
		if (m.has_errno != r.has_errno || (r.has_errno && m.errnum != r.errnum))
			report("ERRNO differs from the reference", data, n);
		if (m.load != r.load || m.requests != r.requests)
			report("load report differs from the reference", data, n);
		if (m.unknown != r.unknown)
			report("unknown count differs from the reference", data, n);
	}
	free(buf);
}

/* ---- generators --------------------------------------------------------- */

#define MAXLEN (70 * 1024)
static char gen[MAXLEN];

static const char *const keys[] = {
	"READY", "STATUS", "STOPPING", "RELOADING", "WATCHDOG", "EXTEND_TIMEOUT_USEC",
	"WATCHDOG_USEC", "MAINPID", "ERRNO", "BUSY", "IDLE", "REQUESTS", "BARRIER", "FDSTORE", "FDNAME", "MONOTONIC_USEC",
	"X_CORRAL", "READY_", "_", "0",
};
static const char *const values[] = {
	"1", "0", "2", "", "trigger", "triggered", "yes", " 1", "1 ", "x",
	"18446744073709551615", "18446744073709551616", "99999999999999999999", "000000000000000000001",
	"1073741823", "1073741824", "4095", "4096", "4294967295", "4294967296", "-1", "+1", "0x10", "1e3", "3000000",
	"hello world", "caf\xc3\xa9", "\xff\xfe", "=", "a=b", "\r", "\t",
};

static size_t append(size_t len, const char *s, size_t n)
{
	if (len + n > MAXLEN)
		n = MAXLEN - len;
	memcpy(gen + len, s, n);
	return len + n;
}

static size_t gen_random(void)
{
	size_t n = below(4) ? below(64) : below(6000);

	for (size_t i = 0; i < n; i++)
		gen[i] = (char)rnd();
	/* often no NUL at all, so that more reaches the line parser */
	if (below(2))
		for (size_t i = 0; i < n; i++)
			if (!gen[i])
				gen[i] = '\n';
	return n;
}

static size_t gen_message(void)
{
	size_t len = 0, lines = 1 + below(8);

	for (size_t i = 0; i < lines; i++) {
		const char *k = keys[below(sizeof keys / sizeof *keys)];
		const char *v = values[below(sizeof values / sizeof *values)];
		char num[40];

		if (below(5) == 0) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)(rnd() >> below(64)));
			v = num;
		}
		len = append(len, k, strlen(k));
		if (below(30))
			len = append(len, "=", 1);
		len = append(len, v, strlen(v));
		if (i + 1 < lines || below(2))
			len = append(len, below(20) ? "\n" : "\n\n", below(20) ? 1 : 2);
	}
	return len;
}

static size_t mutate(size_t len)
{
	size_t rounds = below(4);

	for (size_t r = 0; r < rounds; r++) {
		size_t at = below(len + 1);
		switch (below(6)) {
		case 0:	/* flip a byte */
			if (len)
				gen[below(len)] ^= (char)(1 + below(255));
			break;
		case 1:	/* insert a byte */
			if (len < MAXLEN) {
				memmove(gen + at + 1, gen + at, len - at);
				gen[at] = "\n=\0A1_ x"[below(8)];
				len++;
			}
			break;
		case 2:	/* delete a range */
			if (len) {
				size_t k = 1 + below(len - at + 1);
				if (at + k > len)
					k = len - at;
				memmove(gen + at, gen + at + k, len - at - k);
				len -= k;
			}
			break;
		case 3:	/* truncate */
			len = at;
			break;
		case 4:	/* duplicate the start */
			if (len && len * 2 <= MAXLEN) {
				memcpy(gen + len, gen, len);
				len *= 2;
			}
			break;
		default:
			break;
		}
	}
	return len;
}

static size_t gen_long_line(void)
{
	size_t len = 0, n = 200 + below(below(20) ? 5000 : 60000);
	const char *k = below(3) ? "STATUS=" : below(2) ? "X_LONG=" : "EXTEND_TIMEOUT_USEC=";

	if (below(4) == 0)
		len = append(len, "READY=1\n", 8);
	len = append(len, k, strlen(k));
	for (size_t i = 0; i < n && len < MAXLEN; i++) {
		uint64_t x = rnd();
		gen[len++] = k[0] == 'E' && (x & 3) ? (char)('0' + (x >> 8) % 10) : (char)(' ' + (x >> 8) % 95);
	}
	if (below(3) == 0) {
		/* a very long key too */
		for (size_t i = 0; i < 3000 && len < MAXLEN; i++)
			gen[len++] = below(2) ? '\n' : 'K';
	}
	return len;
}

static size_t gen_many_lines(void)
{
	size_t len = 0, lines = 100 + below(below(20) ? 1200 : 8000);
	static const char *const small[] = { "A=1\n", "READY=1\n", "STATUS=x\n", "\n", "WATCHDOG=1\n",
					     "B=\n", "MAINPID=2\n", "ERRNO=0\n", "STOPPING=0\n",
					     "BUSY=1\n", "IDLE=1\n", "REQUESTS=4294967295\n" };

	for (size_t i = 0; i < lines && len < MAXLEN; i++) {
		const char *s = small[below(sizeof small / sizeof *small)];
		len = append(len, s, strlen(s));
	}
	if (below(2) && len) {
		len--;	/* no final newline */
	}
	return len;
}

/* ---- fixed cases -------------------------------------------------------- */

static int expect(const char *buf, size_t n, int rc_want, int ready, const char *status)
{
	struct cr_notify_msg m;
	const char *why;
	int rc = cr_notify_parse(buf, n, &m, &why);

	checks++;
	if (rc != rc_want || (rc == 0 && (m.ready != ready || (status && strcmp(m.status, status))))) {
		report("a fixed case", buf, n);
		return -1;
	}
	return 0;
}

static void expect_load(const char *buf, int load, uint64_t requests)
{
	struct cr_notify_msg m;
	const char *why;
	size_t n = strlen(buf);

	checks++;
	if (cr_notify_parse(buf, n, &m, &why) != 0 || m.load != load || m.requests != requests)
		report("a fixed load case", buf, n);
}

static void fixed_cases(void)
{
	char big[600];

	expect("READY=1\nSTATUS=x", 16, 0, 1, "x");
	expect("READY=1\nSTATUS=x\n", 17, 0, 1, "x");
	expect("STATUS=x\nREADY=1", 16, 0, 1, "x");
	expect("READY=1", 7, 0, 1, "");
	expect("READY=0", 7, 0, 0, "");
	expect("\n", 1, 0, 0, "");
	expect("", 0, -EINVAL, 0, NULL);
	expect("READY=1\0", 8, -EINVAL, 0, NULL);
	expect("READY=1\nSTATUS=x\0", 17, -EINVAL, 0, NULL);
	expect("READY", 5, -EINVAL, 0, NULL);
	expect("=1", 2, -EINVAL, 0, NULL);
	expect("ready=1", 7, -EINVAL, 0, NULL);
	expect("EXTEND_TIMEOUT_USEC=18446744073709551615", 40, 0, 0, NULL);
	expect("EXTEND_TIMEOUT_USEC=18446744073709551616", 40, -EINVAL, 0, NULL);
	expect_load("BUSY=1", CR_LOAD_BUSY, 0);
	expect_load("IDLE=1", CR_LOAD_IDLE, 0);
	expect_load("BUSY=1\nIDLE=1", CR_LOAD_IDLE, 0);	/* the last one counts */
	expect_load("IDLE=1\nBUSY=1\nREQUESTS=3", CR_LOAD_BUSY, 3);
	expect_load("BUSY=0", 0, 0);				/* not ours: unknown */
	expect_load("REQUESTS=2\nREQUESTS=5", 0, 7);		/* increments add up */
	expect_load("REQUESTS=4294967295", 0, 4294967295ULL);
	expect_load("REQUESTS=0", 0, 0);
	expect("REQUESTS=4294967296", 19, -EINVAL, 0, NULL);
	expect("REQUESTS=-1", 11, -EINVAL, 0, NULL);
	expect("REQUESTS=", 9, -EINVAL, 0, NULL);
	expect("REQUESTS=1.5", 12, -EINVAL, 0, NULL);
	memcpy(big, "STATUS=", 7);
	memset(big + 7, 'a', sizeof big - 7);
	{
		char want[CR_NOTIFY_STATUS_MAX];
		memset(want, 'a', sizeof want - 1);
		want[sizeof want - 1] = 0;
		expect(big, sizeof big, 0, 0, want);
	}
}

int main(int argc, char **argv)
{
	unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 300000;
	unsigned long long seed = argc > 2 ? strtoull(argv[2], NULL, 10) : (unsigned long long)time(NULL);
	double max_seconds = argc > 3 ? atof(argv[3]) : 0;
	unsigned long i, kinds[5] = { 0 };
	struct timespec t0, t;

	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fixed_cases();
	for (i = 0; i < iterations; i++) {
		size_t len;
		unsigned kind = (unsigned)below(10);

		if (kind < 2)
			kind = 0;
		else if (kind < 7)
			kind = 1;
		else if (kind < 8)
			kind = 2;
		else if (kind < 9)
			kind = 3;
		else
			kind = 4;
		kinds[kind]++;
		switch (kind) {
		case 0: len = gen_random(); break;
		case 1: len = gen_message(); break;
		case 2: len = mutate(gen_message()); break;
		case 3: len = below(2) ? gen_long_line() : mutate(gen_long_line()); break;
		default: len = below(2) ? gen_many_lines() : mutate(gen_many_lines()); break;
		}
		check(gen, len);
		if (max_seconds > 0 && (i & 1023) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > max_seconds) {
				i++;
				break;
			}
		}
	}
	printf("seed %llu: %lu datagrams (%lu random, %lu messages, %lu mutated, %lu long lines, %lu many lines), "
	       "%lu checks, %lu failures\n", seed, i, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4],
	       checks, failures);
	return failures ? 1 : 0;
}
