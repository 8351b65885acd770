/* Fuzz target for the backup stream's reader (launcher/backup/
 * backup-stream.c) and the checks restore and verify make on top of it
 * (backup_verify, pass 1 without a target): bad data must give an error
 * that says why, never a crash, a hang or a leak.  Driven over truncated,
 * flipped and mutated real streams by tests/unit-backup-stream under make
 * check. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backup/backup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-backup", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		abort();
	struct backup_info info;
	struct corral_error err = { 0 };
	int r = backup_verify(fd, &info, &err);
	close(fd);
	if (r < 0) {
		if (!err.msg[0])
			abort(); /* every refusal says why */
		return 0;
	}
	backup_info_release(&info);
	return 0;
}
