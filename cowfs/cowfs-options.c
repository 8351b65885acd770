#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowfs-options.h"

void cowfs_usage(FILE *out)
{
	fputs("usage: cowfs [-f] [-d] [-o OPTIONS] --base DIR [--base DIR ...] --upper DIR [--work DIR] MOUNTPOINT\n"
	      "       cowfs [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W[,OPTIONS] [SOURCE] MOUNTPOINT\n"
	      "\n"
	      "Mounts a copy-on-write union of read-only lower directories (the base, topmost\n"
	      "first) and one writable upper directory at MOUNTPOINT.  The upper uses kernel\n"
	      "overlayfs's on-disk format.\n"
	      "\n"
	      "  -f, --foreground     stay in the foreground\n"
	      "  -d, --debug          foreground, and log every FUSE request\n"
	      "  -o OPTIONS           comma-separated: lowerdir, upperdir, workdir, writeback=0|1,\n"
	      "                       fsync=0|1, timeout=SECONDS, noacl, quota_bytes=N,\n"
	      "                       quota_inodes=N, idshift=HOSTBASE:SIZE, threads=N (4),\n"
	      "                       read_bps=N, write_bps=N, read_iops=N, write_iops=N,\n"
	      "                       passthrough=0|1 (1: the kernel reads and writes the\n"
	      "                       real file itself where it can, see cowfs(1)),\n"
	      "                       share_base=0|1 (0; 1: read-only opens of base files in\n"
	      "                       passthrough too, so mounts share the base's page cache;\n"
	      "                       writers of a base file wait, then get ETXTBSY, while\n"
	      "                       it is open so, see cowfs(1)),\n"
	      "                       io_uring=0|1 (1 where the kernel offers it),\n"
	      "                       status=FILE (the mount's active features, at INIT),\n"
	      "                       store=DIR (move upper file data into the block store\n"
	      "                       in DIR, kept once for every mount using it; needs\n"
	      "                       store_root), store_root=NAME (the store root naming\n"
	      "                       this upper's files), store_create=0|1 (0; 1: make the\n"
	      "                       store if DIR has none), store_delay=SECONDS (30: idle\n"
	      "                       time after a file's last writer closed before it\n"
	      "                       moves; 0 = at once, see cowfs(1)),\n"
	      "                       and mount options\n"
	      "                       (ro, nosuid, nodev, noexec, noatime, context=...)\n"
	      "      --base DIR       a read-only lower layer (repeat for more, topmost first)\n"
	      "      --upper DIR      the writable upper layer\n"
	      "      --work DIR       work directory on the upper's filesystem (makes whiteouts\n"
	      "                       and opaque directories appear atomically)\n"
	      "      --status FILE    as -o status=FILE\n"
	      "      --store DIR      as -o store=DIR\n"
	      "  -h, --help           show this help\n"
	      "  -V, --version        show the version, libfuse's, and the features that\n"
	      "                       libfuse and the kernel offer\n",
	      out);
}

static int add_lower(struct cowfs_options *o, const char *dir)
{
	char **l = realloc(o->lowers, sizeof(*l) * (o->nlowers + 1));
	if (!l)
		return -1;
	o->lowers = l;
	o->lowers[o->nlowers] = strdup(dir);
	if (!o->lowers[o->nlowers])
		return -1;
	o->nlowers++;
	return 0;
}

static int append_fuse_opt(struct cowfs_options *o, const char *opt)
{
	size_t old = o->fuse_opts ? strlen(o->fuse_opts) : 0;
	char *s = realloc(o->fuse_opts, old + strlen(opt) + 2);
	if (!s)
		return -1;
	if (old)
		s[old++] = ',';
	strcpy(s + old, opt);
	o->fuse_opts = s;
	return 0;
}

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return true;
	}
	if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return true;
	}
	return false;
}

/* A whole non-negative number (strtoull alone would take "-1"). */
static bool parse_u64(const char *v, unsigned long long *out)
{
	char *end;
	if (!*v || *v == '-' || *v == '+')
		return false;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return !errno && !*end;
}

static bool in_list(const char *key, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(key, list[i]))
			return true;
	return false;
}

/* Mount options handed to libfuse/the kernel unchanged. */
static bool is_mount_option(const char *key)
{
	static const char *const known[] = {
		"allow_other", "allow_root", "default_permissions", "ro", "rw", "suid", "nosuid",
		"dev", "nodev", "exec", "noexec", "atime", "noatime", "diratime", "nodiratime",
		"relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
		"sync", "async", "dirsync", "context", "fscontext", "defcontext", "rootcontext",
		"max_read", "fsname", "subtype", NULL,
	};
	return in_list(key, known);
}

/* fuse-overlayfs and overlayfs options with no meaning for cowfs, accepted
 * so that cowfs can stand in for them. */
static bool is_ignored_compat_option(const char *key)
{
	static const char *const known[] = { "threaded", "static_nlink", "redirect_dir", "index",
					     "metacopy", "xino", "userxattr", "volatile", NULL };
	return in_list(key, known);
}

/* A store root's name as store/FORMAT.md allows it: [A-Za-z0-9_.-]{1,200},
 * no leading dot. */
static bool store_root_name_ok(const char *v)
{
	size_t len = strlen(v);
	if (len == 0 || len > 200 || v[0] == '.')
		return false;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.' || *p == '-'))
			return false;
	return true;
}

/* Splits `lowerdir` on ':' ("\:" escapes a colon). */
static int parse_lowerdir(struct cowfs_options *o, char *val)
{
	char *start = val, *w = val;
	for (char *p = val;; p++) {
		if (*p == '\\' && p[1]) {
			*w++ = *++p;
			continue;
		}
		if (*p == ':' || *p == '\0') {
			bool end = *p == '\0';
			*w = '\0';
			if (*start && add_lower(o, start) < 0)
				return -1;
			if (end)
				return 0;
			start = w = p + 1;
			continue;
		}
		*w++ = *p;
	}
}

static int parse_one_o(struct cowfs_options *o, char *opt)
{
	char *eq = strchr(opt, '=');
	char *val = eq ? eq + 1 : NULL;
	const char *key = opt;

	if (eq)
		*eq = '\0';
	if (!strcmp(key, "lowerdir") && val)
		return parse_lowerdir(o, val);
	if (!strcmp(key, "upperdir") && val) {
		free(o->upper);
		o->upper = strdup(val);
		return 0;
	}
	if (!strcmp(key, "workdir") && val) {
		free(o->work);
		o->work = strdup(val);
		return 0;
	}
	if (!strcmp(key, "writeback") && val) {
		if (!parse_bool(val, &o->writeback))
			goto bad_value;
		return 0;
	}
	if (!strcmp(key, "passthrough") && val) {
		if (!parse_bool(val, &o->passthrough))
			goto bad_value;
		return 0;
	}
	if (!strcmp(key, "share_base") && val) {
		if (!parse_bool(val, &o->share_base))
			goto bad_value;
		return 0;
	}
	if (!strcmp(key, "fsync") && val) {
		if (!parse_bool(val, &o->sync_copy_up))
			goto bad_value;
		return 0;
	}
	if (!strcmp(key, "timeout") && val) {
		char *end;
		errno = 0;
		o->timeout = strtod(val, &end);
		if (errno || *end || end == val || o->timeout < 0)
			goto bad_value;
		return 0;
	}
	if ((!strcmp(key, "quota_bytes") || !strcmp(key, "quota_inodes")) && val) {
		unsigned long long v;
		if (!parse_u64(val, &v))
			goto bad_value;
		if (!strcmp(key, "quota_bytes"))
			o->quota_bytes = v;
		else
			o->quota_inodes = v;
		return 0;
	}
	if (!strcmp(key, "idshift") && val) {
		if (sscanf(val, "%u:%u", &o->idshift_base, &o->idshift_size) != 2 || !o->idshift_size)
			goto bad_value;
		return 0;
	}
	if ((!strcmp(key, "read_bps") || !strcmp(key, "write_bps") || !strcmp(key, "read_iops") ||
	     !strcmp(key, "write_iops")) && val) {
		unsigned long long v;
		if (!parse_u64(val, &v))
			goto bad_value;
		if (!strcmp(key, "read_bps"))
			o->read_bps = v;
		else if (!strcmp(key, "write_bps"))
			o->write_bps = v;
		else if (!strcmp(key, "read_iops"))
			o->read_iops = v;
		else
			o->write_iops = v;
		return 0;
	}
	if (!strcmp(key, "threads") && val) {
		char *end;
		long t = strtol(val, &end, 10);
		if (*end || end == val || t < 1 || t > 256)
			goto bad_value;
		o->threads = (int)t;
		return 0;
	}
	if (!strcmp(key, "io_uring") && val) {
		bool on;
		if (!parse_bool(val, &on))
			goto bad_value;
		o->io_uring = on;
		return 0;
	}
	if (!strcmp(key, "status") && val) {
		/* Written by the daemon, read by whoever mounted: a path of
		 * the caller's, never one inside the layers. */
		if (val[0] != '/')
			goto bad_value;
		free(o->status_path);
		o->status_path = strdup(val);
		return o->status_path ? 0 : -1;
	}
	if (!strcmp(key, "store") && val) {
		/* A directory of the host's, opened by the daemon: absolute,
		 * like status=. */
		if (val[0] != '/')
			goto bad_value;
		free(o->store);
		o->store = strdup(val);
		return o->store ? 0 : -1;
	}
	if (!strcmp(key, "store_root") && val) {
		if (!store_root_name_ok(val))
			goto bad_value;
		free(o->store_root);
		o->store_root = strdup(val);
		return o->store_root ? 0 : -1;
	}
	if (!strcmp(key, "store_create") && val) {
		if (!parse_bool(val, &o->store_create))
			goto bad_value;
		return 0;
	}
	if (!strcmp(key, "store_delay") && val) {
		unsigned long long v;
		/* A day at most: longer is a typo, and it keeps deadlines small. */
		if (!parse_u64(val, &v) || v > 86400)
			goto bad_value;
		o->store_delay = (unsigned)v;
		return 0;
	}
	if (!strcmp(key, "noacl")) {
		o->acl = false;
		return 0;
	}
	if (!strcmp(key, "debug")) {
		o->debug = o->foreground = true;
		return 0;
	}
	if (is_ignored_compat_option(key))
		return 0;
	static const char *const needs_value[] = { "lowerdir", "upperdir", "workdir", "writeback", "passthrough", "share_base", "fsync",
						   "timeout", "quota_bytes", "quota_inodes", "idshift", "threads", "read_bps", "write_bps",
						   "read_iops", "write_iops", "io_uring", "status", "store", "store_root",
						   "store_create", "store_delay", NULL };
	if (!val && in_list(key, needs_value)) {
		fprintf(stderr, "cowfs: option '%s' needs a value (%s=...)\n", key, key);
		return -1;
	}
	if (eq)
		*eq = '=';
	if (is_mount_option(key))
		return append_fuse_opt(o, opt);
	fprintf(stderr, "cowfs: unknown option '%s' (see cowfs --help)\n", opt);
	return -1;

bad_value:
	fprintf(stderr, "cowfs: option '%s' has an invalid value '%s'\n", key, val);
	return -1;
}

/* Splits an -o argument on commas not escaped by a backslash. */
static int parse_o(struct cowfs_options *o, const char *arg)
{
	char *copy = strdup(arg);
	if (!copy)
		return -1;
	char *start = copy;
	int r = 0;
	for (char *p = copy; r == 0; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == ',' || *p == '\0') {
			bool end = *p == '\0';
			*p = '\0';
			if (*start)
				r = parse_one_o(o, start);
			if (end)
				break;
			start = p + 1;
		}
	}
	free(copy);
	return r;
}

int cowfs_options_parse(int argc, char **argv, struct cowfs_options *o)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "base", required_argument, NULL, 'b' },
		{ "upper", required_argument, NULL, 'u' },
		{ "work", required_argument, NULL, 'w' },
		{ "status", required_argument, NULL, 's' },
		{ "store", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	/* Off by default: measured, the writeback cache costs a SETATTR round
	 * trip per removed file (rm -rf 2-4x slower) and helps little here. */
	o->writeback = false;
	o->sync_copy_up = true;
	/* Where libfuse and the kernel offer it (decided at FUSE_INIT). */
	o->passthrough = true;
	o->acl = true;
	o->timeout = 86400.0;
	o->threads = 4;
	o->io_uring = -1;
	o->store_delay = 30;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fdo:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			break;
		case 'o':
			if (parse_o(o, optarg) < 0)
				return -1;
			break;
		case 'b':
			if (add_lower(o, optarg) < 0)
				return -1;
			break;
		case 'u':
			free(o->upper);
			o->upper = strdup(optarg);
			break;
		case 'w':
			free(o->work);
			o->work = strdup(optarg);
			break;
		case 's': /* -o status=FILE for a path that holds a comma */
			if (optarg[0] != '/') {
				fprintf(stderr, "cowfs: --status needs an absolute path\n");
				return -1;
			}
			free(o->status_path);
			o->status_path = strdup(optarg);
			break;
		case 'S': /* -o store=DIR for a path that holds a comma */
			if (optarg[0] != '/') {
				fprintf(stderr, "cowfs: --store needs an absolute path\n");
				return -1;
			}
			free(o->store);
			o->store = strdup(optarg);
			break;
		case 'h':
			cowfs_usage(stdout);
			return 1;
		case 'V':
			return 2;
		case ':':
			fprintf(stderr, "cowfs: option '%s' needs a value (see cowfs --help)\n", argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "cowfs: unknown option '%s' (see cowfs --help)\n", argv[optind - 1]);
			return -1;
		}
	}
	int rest = argc - optind;
	if (rest == 2) {
		optind++; /* "SOURCE MOUNTPOINT", as mount(8) helpers are called */
		rest = 1;
	}
	if (rest != 1) {
		fprintf(stderr, rest == 0 ? "cowfs: no mountpoint given (see cowfs --help)\n"
					  : "cowfs: too many arguments (see cowfs --help)\n");
		return -1;
	}
	o->mountpoint = strdup(argv[optind]);
	if (o->nlowers == 0) {
		fprintf(stderr, "cowfs: no base (lower) directory given: use --base DIR or -o lowerdir=DIR\n");
		return -1;
	}
	if (!o->upper) {
		fprintf(stderr, "cowfs: no upper directory given: use --upper DIR or -o upperdir=DIR\n");
		return -1;
	}
	if (o->store && !o->store_root) {
		fprintf(stderr, "cowfs: option 'store' needs 'store_root' (the root naming this upper's files)\n");
		return -1;
	}
	if (!o->store && o->store_root) {
		fprintf(stderr, "cowfs: option 'store_root' needs 'store' (the store's directory)\n");
		return -1;
	}
	return 0;
}

void cowfs_options_release(struct cowfs_options *o)
{
	for (int i = 0; i < o->nlowers; i++)
		free(o->lowers[i]);
	free(o->lowers);
	free(o->upper);
	free(o->work);
	free(o->mountpoint);
	free(o->fuse_opts);
	free(o->status_path);
	free(o->store);
	free(o->store_root);
}
