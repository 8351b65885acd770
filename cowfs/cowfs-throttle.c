/* I/O limits enforced by cowfs itself.
 *
 * A container's file I/O reaches the disk through its cowfs daemon, and on
 * cgroup v1 buffered writeback is not charged to the writer's blkio cgroup:
 * a blkio limit would not bite.  So cowfs paces the bytes and operations it
 * reads and writes on the container's behalf.  Each limit is a virtual
 * clock: an operation reserves its share of time after the previous one
 * and sleeps until its slot, so the long-run rate never passes the limit
 * and bursts are not allowed to run ahead. */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "cowfs.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t reserve(struct cowfs_rate *r, uint64_t amount)
{
	if (!r->per_second || !amount)
		return 0;
	uint64_t cost = (uint64_t)((double)amount * 1e9 / (double)r->per_second);
	pthread_mutex_lock(&r->lock);
	uint64_t now = now_ns();
	if (r->next < now)
		r->next = now;
	uint64_t start = r->next;
	r->next += cost;
	pthread_mutex_unlock(&r->lock);
	/* Wait until the end of our slot: this I/O completes no earlier
	 * than the rate allows. */
	return start + cost > now ? start + cost - now : 0;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void throttle_io(struct cowfs *fs, bool write, uint64_t bytes)
{
	struct cowfs_rate *b = write ? &fs->write_bps : &fs->read_bps;
	struct cowfs_rate *o = write ? &fs->write_iops : &fs->read_iops;
	uint64_t wait_b = reserve(b, bytes), wait_o = reserve(o, 1);
	uint64_t wait = wait_b > wait_o ? wait_b : wait_o;
	if (wait)
		sleep_ns(wait);
}
