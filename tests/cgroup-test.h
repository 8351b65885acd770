/* Helpers shared by the cgroup unit tests (one per test program). */
#ifndef CORRAL_TESTS_CGROUP_TEST_H
#define CORRAL_TESTS_CGROUP_TEST_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cgroup/cgroup-internal.h"
#include "cleanup.h"
#include "tap.h"

#define MiB (1024 * 1024)

static inline void put(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "we");
	if (!f) {
		diag("cannot create %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
}

/* True if dir/file holds `want` (ignoring one trailing newline). */
static inline bool holds(const char *dir, const char *file, const char *want)
{
	cleanup_free char *text = NULL;
	if (cg_read(dir, file, &text, NULL) < 0) {
		diag("cannot read %s/%s", dir, file);
		return false;
	}
	size_t n = strlen(text);
	if (n && text[n - 1] == '\n')
		text[n - 1] = '\0';
	if (strcmp(text, want) != 0)
		diag("%s/%s holds \"%s\", want \"%s\"", dir, file, text, want);
	return strcmp(text, want) == 0;
}

/* The limits every test applies: 64M, 50000/100000 us, weight 200,
 * cpuset 0, 16 pids, 1 MiB/s reads from 8:0. */
static inline void fixture_limits(struct cgroup_limits *lim)
{
	cgroup_limits_init(lim);
	lim->memory_max = 64 * MiB;
	lim->memory_swap_max = 0;
	lim->cpu_quota_us = 50000;
	lim->cpu_period_us = 100000;
	lim->cpu_weight = 200;
	snprintf(lim->cpuset_cpus, sizeof(lim->cpuset_cpus), "0");
	lim->pids_max = 16;
	lim->io[0] = (struct cgroup_io_limit){ 8, 0, 1048576, CGROUP_UNSET, CGROUP_UNSET, CGROUP_UNSET };
	lim->nio = 1;
}

#endif
