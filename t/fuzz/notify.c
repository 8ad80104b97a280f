/*
 * notify.c (t/fuzz): the sd_notify datagram parser, cr_notify_parse, as
 * notify_cb calls it (datagrams of at most 4096 bytes). t/036 throws
 * random datagrams at it; this one is coverage-guided. Beyond not
 * crashing: a parsed message holds only values its checks allow, and a
 * refused one says why.
 */
#include <errno.h>
#include <string.h>

#include "notify.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cr_notify_msg m;
	const char *why;
	int rc;

	if (size > 4096)
		return 0;	/* notify_cb drops those unread */
	rc = cr_notify_parse((const char *)data, size, &m, &why);
	if (rc < 0) {
		if (rc != -EINVAL || !why || !*why)
			fuzz_fail("refused (%d) without a reason", rc);
		return 0;
	}
	if (why)
		fuzz_fail("accepted, with a reason: %s", why);
	if (!size || memchr(data, 0, size))
		fuzz_fail("accepted an empty datagram or a NUL byte");
	if (!memchr(m.status, 0, sizeof m.status))
		fuzz_fail("STATUS not terminated");
	if (!m.has_status && m.status[0])
		fuzz_fail("a status without STATUS=");
	if (m.has_status && !memmem(data, size, "STATUS=", 7))
		fuzz_fail("STATUS= that the datagram does not hold");
	if (m.mainpid && (m.mainpid < 2 || m.mainpid > 0x3fffffff))
		fuzz_fail("MAINPID %d", (int)m.mainpid);
	if (m.has_errno && (m.errnum < 0 || m.errnum > 4095))
		fuzz_fail("ERRNO %d", m.errnum);
	if (!m.has_errno && m.errnum)
		fuzz_fail("an errno without ERRNO=");
	if ((m.ready | m.stopping | m.reloading | m.watchdog | m.watchdog_trigger) & ~1)
		fuzz_fail("a flag that is not 0 or 1");
	if (m.load != 0 && m.load != CR_LOAD_BUSY && m.load != CR_LOAD_IDLE)
		fuzz_fail("load %d", m.load);
	if (m.load && !memmem(data, size, m.load == CR_LOAD_BUSY ? "BUSY=1" : "IDLE=1", 6))
		fuzz_fail("a load state that the datagram does not hold");
	if (m.requests && !memmem(data, size, "REQUESTS=", 9))
		fuzz_fail("REQUESTS that the datagram does not hold");
	if (m.requests > (uint64_t)size / 10 * CR_NOTIFY_REQUESTS_MAX)
		fuzz_fail("more requests than the datagram can hold");
	if (m.watchdog_usec && !memmem(data, size, "WATCHDOG_USEC=", 14))
		fuzz_fail("WATCHDOG_USEC that the datagram does not hold");
	return 0;
}
