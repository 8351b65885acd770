/* cowfs command line: the native form and fuse-overlayfs's form.
 *
 *   cowfs [-f] [-d] [-o OPTS] --base DIR [--base DIR...] --upper DIR [--work DIR] MOUNTPOINT
 *   cowfs [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W[,OPTS] [SOURCE] MOUNTPOINT
 *
 * Invariant after a successful parse: at least one lower, an upper and a
 * mountpoint are set; fuse_opts holds only mount options libfuse knows. */
#ifndef COWFS_OPTIONS_H
#define COWFS_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

struct cowfs_options {
	char **lowers; /* topmost first */
	int nlowers;
	char *upper;
	char *work;
	char *mountpoint;
	bool foreground;
	bool debug;
	bool writeback;
	bool passthrough; /* FUSE passthrough where the kernel offers it */
	bool share_base;  /* read-only opens of base files in passthrough too */
	bool sync_copy_up;
	bool acl;
	double timeout;	 /* entry/attr cache timeout, seconds */
	unsigned long long quota_bytes, quota_inodes; /* 0 = none */
	unsigned idshift_base, idshift_size;	       /* 0 size = off */
	int threads;				       /* worker threads */
	unsigned long long read_bps, write_bps, read_iops, write_iops; /* 0 = none */
	int io_uring;	/* FUSE over io_uring: 1, 0, or -1 = where the kernel offers it */
	char *status_path; /* where the daemon reports its mount's features, or NULL */
	char *store;	   /* the host's block store (cowfs-store.c), or NULL */
	char *store_root;  /* the root naming this upper's recipes (required with store) */
	bool store_create; /* make the store if it is missing */
	unsigned store_delay; /* seconds idle after the last writer before a file moves */
	char *fuse_opts; /* comma list handed to libfuse */
};

/* Returns 0, or -1 after printing one clear message on stderr; 1 when
 * --help was handled (exit 0); 2 when --version was asked (the caller
 * prints it, cowfs-features.c). */
int cowfs_options_parse(int argc, char **argv, struct cowfs_options *ret);
void cowfs_options_release(struct cowfs_options *o);
void cowfs_usage(FILE *out);

#endif
