/* corral backup | restore | verify: backup streams of a container's
 * snapshots (backup/backup.h, backup/FORMAT.md), and the OCI layer export
 * (backup/backup-oci.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup-oci.h"
#include "backup/backup.h"
#include "cleanup.h"
#include "cli.h"
#include "container/container-config.h"
#include "container/state.h"

#define BACKUP_SUFFIX ".corral-backup"

static void backup_usage(FILE *out)
{
	fputs("usage: corral [--json] backup NAME [--snapshot TAG] [--since TAG|last]\n"
	      "                     [--format corral|oci-layer] [--level N] -o FILE|-\n"
	      "       corral [--json] backup --all -o DIR [--since last] [--level N]\n"
	      "\n"
	      "Writes a backup stream of container NAME: its tree as of snapshot TAG, or of\n"
	      "a snapshot taken now (backup-<UTC time>; a running container is frozen for\n"
	      "the cut), with the template's identity, the container's config and the\n"
	      "blocks of its files, zstd-compressed (--level, default 3) and checksummed\n"
	      "end to end (format: launcher/backup/FORMAT.md).  --since TAG makes it\n"
	      "incremental: blocks the earlier snapshot TAG already has are named, not\n"
	      "carried (the receiver must have restored TAG's stream); --since last uses\n"
	      "the newest other backup-* snapshot.  -o FILE is written whole or not at all\n"
	      "(temp file, fsync, rename); -o - writes to stdout (not a terminal).\n"
	      "--all writes DIR/NAME.TAG" BACKUP_SUFFIX " for every container (with --since\n"
	      "last, a full stream for one without an earlier backup), reports the ones\n"
	      "that fail and goes on (exit status 1 if any failed).\n"
	      "--format oci-layer writes the snapshot's changes as an OCI image layer tar\n"
	      "instead.  Progress goes to stderr when it is a terminal; with --json and\n"
	      "-o -, the summary goes to stderr too (stdout is the stream).\n",
	      out);
}

/* ---- progress on a terminal ---- */
struct progress {
	double t0, last;
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	double now = mono();
	if (now - p->last < 0.25 && done < total)
		return;
	p->last = now;
	double el = now - p->t0, rate = el > 0 ? done / el : 0;
	double eta = rate > 0 && total > done ? (total - done) / rate : 0;
	fprintf(stderr, "\r%.1f / %.1f MiB  %.1f MiB/s  ETA %.0f s   ", done / 1048576.0, total / 1048576.0,
		rate / 1048576.0, eta);
	fflush(stderr);
}

/* ---- output files ---- */

/* A temp file beside `path` (O_EXCL); its name into tmp. */
static int open_temp(const char *path, char *tmp, size_t len, struct corral_error *err)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	if (slash)
		*slash = '\0';
	int n = snprintf(tmp, len, "%s%s.%s.tmp.%d", slash ? copy : "", slash ? "/" : "", base, (int)getpid());
	if (n < 0 || (size_t)n >= len)
		return err_plain(err, ENAMETOOLONG, "%s: name too long", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? err_set(err, errno, "creating %s", tmp) : fd;
}

/* Where -o FILE goes.  A new or regular file is written beside its real
 * path and renamed over it (*direct false; `real` the path to rename to);
 * anything else that exists (a fifo, a device such as /dev/null) is
 * written in place, never replaced (*direct true, the fd returned), and a
 * terminal is refused. */
static int open_output(const char *path, char *real, size_t real_len, char *tmp, size_t tmp_len, bool *direct,
		       struct corral_error *err)
{
	struct stat st;
	*direct = false;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			return err_set(err, errno, "%s", path);
		snprintf(real, real_len, "%s", path);
		return open_temp(real, tmp, tmp_len, err);
	}
	if (S_ISDIR(st.st_mode))
		return err_plain(err, EISDIR, "%s is a directory", path);
	if (S_ISREG(st.st_mode)) {
		char r[PATH_MAX];
		if (!realpath(path, r))
			return err_set(err, errno, "%s", path);
		snprintf(real, real_len, "%s", r);
		return open_temp(real, tmp, tmp_len, err);
	}
	int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "opening %s", path);
	if (isatty(fd)) {
		close(fd);
		return err_plain(err, EINVAL, "refusing to write a backup stream to a terminal (%s)", path);
	}
	*direct = true;
	snprintf(real, real_len, "%s", path);
	return fd;
}

/* fsync, rename over `path`, fsync its directory. */
static int commit_temp(int fd, const char *tmp, const char *path, struct corral_error *err)
{
	if (fsync(fd) < 0)
		return err_set(err, errno, "fsync of %s", tmp);
	if (rename(tmp, path) < 0)
		return err_set(err, errno, "renaming %s to %s", tmp, path);
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	cleanup_close int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return err_set(err, errno, "fsync of the directory of %s", path);
	return 0;
}

static json_object *result_json(const char *name, const struct backup_result *res, const char *output)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "container", json_object_new_string(name));
	json_object_object_add(o, "tag", json_object_new_string(res->tag));
	json_object_object_add(o, "since", res->since[0] ? json_object_new_string(res->since) : NULL);
	json_object_object_add(o, "files", json_object_new_int64((int64_t)res->files));
	json_object_object_add(o, "blocks_sent", json_object_new_int64((int64_t)res->blocks_sent));
	json_object_object_add(o, "blocks_from_base", json_object_new_int64((int64_t)res->blocks_base));
	json_object_object_add(o, "content_bytes", json_object_new_int64((int64_t)res->content_bytes));
	json_object_object_add(o, "stream_bytes", json_object_new_int64((int64_t)res->stream_bytes));
	json_object_object_add(o, "seconds", json_object_new_double(res->seconds));
	if (output)
		json_object_object_add(o, "output", json_object_new_string(output));
	return o;
}

/* To stdout, or to stderr when stdout carries the stream (-o -). */
static void print_json(json_object *o, const char *out)
{
	cli_print_json(out && !strcmp(out, "-") ? stderr : stdout, o);
}

static void print_result(const char *name, const struct backup_result *res, const char *output)
{
	fprintf(cli_globals.json ? stderr : stdout,
		"backup of %s at %s%s%s: %llu files, %llu blocks sent, %llu from the base, %llu content bytes, "
		"%llu stream bytes%s%s\n",
		name, res->tag, res->since[0] ? " since " : "", res->since, (unsigned long long)res->files,
		(unsigned long long)res->blocks_sent, (unsigned long long)res->blocks_base,
		(unsigned long long)res->content_bytes, (unsigned long long)res->stream_bytes, output ? " -> " : "",
		output ? output : "");
}

/* One backup to `path` (temp + fsync + rename), or to stdout for "-"; with
 * dir_mode, path is a directory and the file is NAME.TAG.corral-backup in it. */
static int backup_to(struct backup_options *o, const char *path, bool dir_mode, struct backup_result *res,
		     char *final, size_t final_len, struct corral_error *err)
{
	struct progress pr = { .t0 = mono() };
	if (isatty(STDERR_FILENO) && !cli_globals.json) {
		o->progress = progress_cb;
		o->progress_ctx = &pr;
	}
	if (!dir_mode && !strcmp(path, "-")) {
		snprintf(final, final_len, "-");
		o->out_fd = STDOUT_FILENO;
		int r = backup_create(o, res, err);
		if (o->progress)
			fputc('\n', stderr);
		return r;
	}
	char tmp[PATH_MAX], target[PATH_MAX];
	bool direct = false;
	int fd;
	if (dir_mode) {
		snprintf(target, sizeof(target), "%s/%s", path, o->name);
		fd = open_temp(target, tmp, sizeof(tmp), err);
	} else {
		fd = open_output(path, target, sizeof(target), tmp, sizeof(tmp), &direct, err);
	}
	if (fd < 0)
		return fd;
	o->out_fd = fd;
	int r = backup_create(o, res, err);
	if (o->progress)
		fputc('\n', stderr);
	if (r == 0 && dir_mode)
		snprintf(target, sizeof(target), "%s/%s.%s" BACKUP_SUFFIX, path, o->name, res->tag);
	if (r == 0 && !direct)
		r = commit_temp(fd, tmp, target, err);
	close(fd);
	if (r < 0 && !direct)
		unlink(tmp);
	else if (r == 0)
		snprintf(final, final_len, "%s", target);
	return r;
}

static int backup_all(struct backup_options *o, const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "corral: backup --all: %s is not a directory\n", dir);
		return CLI_EXIT_ERROR;
	}
	char **names;
	size_t n;
	if (cli_container_names(&names, &n) < 0) {
		fprintf(stderr, "corral: cannot list the containers in %s\n", state_root());
		return CLI_EXIT_ERROR;
	}
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		struct corral_error err = { 0 };
		struct backup_result res;
		char final[PATH_MAX];
		o->name = names[i];
		if (backup_to(o, dir, true, &res, final, sizeof(final), &err) < 0) {
			failed++;
			cli_fail(&err);
			if (arr) {
				json_object *e = json_object_new_object();
				json_object_object_add(e, "container", json_object_new_string(names[i]));
				json_object_object_add(e, "error", json_object_new_string(err.msg));
				json_object_array_add(arr, e);
			}
		} else if (arr) {
			json_object_array_add(arr, result_json(names[i], &res, final));
		} else {
			print_result(names[i], &res, final);
		}
		free(names[i]);
	}
	free(names);
	if (arr)
		print_json(arr, NULL);
	if (failed)
		fprintf(stderr, "corral: backup --all: %d of %zu containers failed\n", failed, n);
	return failed ? CLI_EXIT_ERROR : 0;
}

static int backup_oci(const char *name, const char *tag_arg, const char *out)
{
	struct corral_error err = { 0 };
	char tag[SNAPSHOT_TAG_MAX + 1];
	if (tag_arg) {
		snprintf(tag, sizeof(tag), "%s", tag_arg);
	} else {
		time_t t = time(NULL);
		struct tm tm;
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&t, &tm));
		snprintf(tag, sizeof(tag), BACKUP_TAG_PREFIX "%s", stamp);
		struct snapshot_result sr;
		if (snapshot_create(name, tag, &sr, &err) < 0)
			return cli_fail(&err);
	}
	struct backup_oci_result res = { 0 };
	int r;
	char tmp[PATH_MAX];
	if (!strcmp(out, "-")) {
		r = backup_oci_layer(name, tag, STDOUT_FILENO, &res, &err);
	} else {
		char real[PATH_MAX];
		bool direct;
		int fd = open_output(out, real, sizeof(real), tmp, sizeof(tmp), &direct, &err);
		if (fd < 0) {
			if (!tag_arg)
				snapshot_remove(name, tag, NULL);
			return cli_fail(&err);
		}
		r = backup_oci_layer(name, tag, fd, &res, &err);
		if (r == 0 && !direct)
			r = commit_temp(fd, tmp, real, &err);
		close(fd);
		if (r < 0 && !direct)
			unlink(tmp);
	}
	if (r < 0) {
		if (!tag_arg)
			snapshot_remove(name, tag, NULL);
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "container", json_object_new_string(name));
		json_object_object_add(o, "tag", json_object_new_string(tag));
		json_object_object_add(o, "format", json_object_new_string("oci-layer"));
		json_object_object_add(o, "entries", json_object_new_int64((int64_t)res.entries));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res.bytes));
		print_json(o, out);
	} else {
		fprintf(strcmp(out, "-") ? stdout : stderr, "OCI layer of %s at %s: %llu entries, %llu bytes\n", name,
			tag, (unsigned long long)res.entries, (unsigned long long)res.bytes);
	}
	return 0;
}

struct backup_ctx {
	struct backup_options *o;
	const char *out, *format;
	bool all;
};

static int backup_opt(int opt, const char *arg, void *ctx)
{
	struct backup_ctx *x = ctx;
	char *end;
	long l;
	switch (opt) {
	case 's':
		x->o->snapshot = arg;
		break;
	case 'S':
		x->o->since = arg;
		break;
	case 'f':
		x->format = arg;
		break;
	case 'l':
		l = strtol(arg, &end, 10);
		if (end == arg || *end || l < 1 || l > 19)
			return cli_usage_error("backup", "--level takes 1 to 19");
		x->o->level = (int)l;
		break;
	case 'o':
		x->out = arg;
		break;
	default:
		x->all = true;
	}
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		backup_usage(stdout);
		return 0;
	}
	struct backup_options o = { .level = 3, .out_fd = -1 };
	struct backup_ctx x = { .o = &o, .format = "corral" };
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "since", required_argument, NULL, 'S' },
		{ "format", required_argument, NULL, 'f' },
		{ "level", required_argument, NULL, 'l' },
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "backup", .shortopts = "o:", .longopts = opts,
					      .max_args = 1 };
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, backup_opt, &x, &a);
	if (pr)
		return pr;
	/* The process ends with the command: a needs no release. */
	const char *out = x.out, *format = x.format, *name = a.argc ? a.argv[0] : NULL;
	bool all = x.all;
	if (!out)
		return cli_usage_error("backup", "needs -o FILE, -o - or (with --all) -o DIR");
	if (strcmp(format, "corral") && strcmp(format, "oci-layer"))
		return cli_usage_error("backup", "--format is corral or oci-layer, not '%s'", format);
	if (all == !!name)
		return cli_usage_error("backup", "takes NAME or --all");
	if (all && (o.snapshot || (o.since && strcmp(o.since, "last")) || strcmp(format, "corral")))
		return cli_usage_error("backup", "--all takes only -o DIR, --since last and --level");
	if (!strcmp(out, "-") && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "corral: backup: refusing to write a backup stream to a terminal (use -o FILE, or a pipe)\n");
		return CLI_EXIT_ERROR;
	}
	if (all) {
		/* A container backed up for the first time gets a full stream. */
		o.last_or_full = true;
		return backup_all(&o, out);
	}
	if (!strcmp(format, "oci-layer")) {
		if (o.since)
			return cli_usage_error("backup", "--format oci-layer has no --since (the layer is the whole delta)");
		return backup_oci(name, o.snapshot, out);
	}
	o.name = name;
	struct corral_error err = { 0 };
	struct backup_result res;
	char final[PATH_MAX];
	if (backup_to(&o, out, false, &res, final, sizeof(final), &err) < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		/* With -o -, stdout is the stream: the summary goes to stderr. */
		print_json(result_json(name, &res, final), out);
	} else if (strcmp(out, "-")) {
		print_result(name, &res, final);
	}
	return 0;
}

/* ---- restore and verify ---- */

static int open_input(const char *path, int *fd, struct corral_error *err)
{
	if (!strcmp(path, "-")) {
		if (isatty(STDIN_FILENO))
			return err_plain(err, EINVAL, "refusing to read a backup stream from a terminal");
		*fd = STDIN_FILENO;
		return 0;
	}
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? err_set(err, errno, "opening %s", path) : 0;
}

static json_object *info_json(const struct backup_info *i)
{
	char hex[33];
	json_object *o = json_object_new_object();
	json_object_object_add(o, "container", json_object_new_string(i->h.container));
	json_object_object_add(o, "tag", json_object_new_string(i->h.tag));
	json_object_object_add(o, "since", i->h.since_tag[0] ? json_object_new_string(i->h.since_tag) : NULL);
	json_object_object_add(o, "template", json_object_new_string(i->h.template_name));
	bstream_hex(i->h.template_digest, 16, hex);
	json_object_object_add(o, "template_digest", json_object_new_string(hex));
	bstream_hex(i->h.backup_id, 16, hex);
	json_object_object_add(o, "backup_id", json_object_new_string(hex));
	if (i->h.since_tag[0]) {
		bstream_hex(i->h.since_id, 16, hex);
		json_object_object_add(o, "since_id", json_object_new_string(hex));
	}
	json_object_object_add(o, "created", json_object_new_int64(i->h.created));
	json_object_object_add(o, "corral_version", json_object_new_string(i->h.version));
	json_object_object_add(o, "entries", json_object_new_int64((int64_t)i->entries));
	json_object_object_add(o, "files", json_object_new_int64((int64_t)i->files));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)i->total_bytes));
	json_object_object_add(o, "blocks", json_object_new_int64((int64_t)i->counts[BREC_BLOCK]));
	json_object_object_add(o, "blocks_from_base", json_object_new_int64((int64_t)i->counts[BREC_BASE]));
	json_object_object_add(o, "recipes", json_object_new_int64((int64_t)i->counts[BREC_RECIPE]));
	json_object_object_add(o, "content_bytes", json_object_new_int64((int64_t)i->content_bytes));
	json_object_object_add(o, "stream_bytes", json_object_new_int64((int64_t)i->compressed_bytes));
	json_object_object_add(o, "seconds", json_object_new_double(i->seconds));
	return o;
}

int cmd_verify(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs("usage: corral [--json] verify FILE|-\n"
		      "\n"
		      "Checks a backup stream whole (every checksum, its structure, every block its\n"
		      "recipes name) without restoring it, and prints its header: container, tag,\n"
		      "base, template, counts and sizes.  Exit status 0 if it is valid.\n",
		      stdout);
		return 0;
	}
	static const struct cli_spec spec = { .cmd = "verify", .min_args = 1, .max_args = 1,
					      .missing = "takes FILE or -" };
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (pr)
		return pr;
	/* The process ends with the command: a needs no release. */
	argv = a.argv - 1;
	struct corral_error err = { 0 };
	int fd;
	if (open_input(argv[1], &fd, &err) < 0)
		return cli_fail(&err);
	struct backup_info info;
	int r = backup_verify(fd, &info, &err);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		print_json(info_json(&info), NULL);
	} else {
		char hex[33];
		bstream_hex(info.h.template_digest, 16, hex);
		printf("valid backup of %s at %s%s%s\n", info.h.container, info.h.tag,
		       info.h.since_tag[0] ? ", incremental since " : " (full)", info.h.since_tag);
		printf("template %s (digest %s), corral %s\n", info.h.template_name, hex, info.h.version);
		printf("%llu entries, %llu files (%llu bytes); %llu blocks (%llu bytes), %llu from the base; "
		       "%llu stream bytes\n",
		       (unsigned long long)info.entries, (unsigned long long)info.files,
		       (unsigned long long)info.total_bytes, (unsigned long long)info.counts[BREC_BLOCK],
		       (unsigned long long)info.content_bytes, (unsigned long long)info.counts[BREC_BASE],
		       (unsigned long long)info.compressed_bytes);
	}
	backup_info_release(&info);
	return 0;
}

static int restore_create(void *ctx, struct container_config *c, struct corral_error *err)
{
	(void)ctx;
	/* The one snapshot the restore committed under this name. */
	return cli_create_container(c, 1, err);
}

static void restore_remove(void *ctx, const char *name)
{
	(void)ctx;
	/* A full restore's new container: its one snapshot is the restore's. */
	char *rm_argv[] = { "rm", "-f", "--snapshots", (char *)name, NULL };
	/* Its messages would speak of a container the user never asked for. */
	int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved >= 0 && null >= 0)
		dup2(null, STDOUT_FILENO);
	cmd_rm(4, rm_argv);
	if (saved >= 0) {
		fflush(stdout);
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}
	if (null >= 0)
		close(null);
}

static int restore_opt(int opt, const char *arg, void *ctx)
{
	struct backup_restore_options *o = ctx;
	if (opt == 'a')
		o->as = arg;
	else if (opt == 'm')
		o->allow_mounts = true;
	else
		o->allow_privileges = true;
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs("usage: corral [--json] restore FILE|- [--as NAME] [--allow-mounts] [--allow-privileges]\n"
		      "\n"
		      "Restores a backup stream: checks all of it first (checksums, structure, the\n"
		      "template here has the stream's digest, the target) and changes nothing if\n"
		      "anything is wrong; then puts its blocks into this host's store, keeps the\n"
		      "snapshot (same tag) and creates the container, stopped (--as NAME: under\n"
		      "another name).  An incremental stream rolls the stopped container, which\n"
		      "holds its base, forward to the new snapshot.  A config with bind mounts\n"
		      "(host paths of the sending host) is refused without --allow-mounts; one\n"
		      "with capabilities beyond the default set or seccomp unconfined, without\n"
		      "--allow-privileges.\n",
		      stdout);
		return 0;
	}
	struct backup_restore_options o = { .create = restore_create, .remove = restore_remove };
	static const struct option opts[] = {
		{ "as", required_argument, NULL, 'a' },
		{ "allow-mounts", no_argument, NULL, 'm' },
		{ "allow-privileges", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "restore", .longopts = opts, .min_args = 1, .max_args = 1,
					      .missing = "takes FILE or -" };
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, restore_opt, &o, &a);
	if (pr)
		return pr;
	/* The process ends with the command: a needs no release. */
	const char *in = a.argv[0];
	struct corral_error err = { 0 };
	if (open_input(in, &o.fd, &err) < 0)
		return cli_fail(&err);
	struct backup_info info;
	int r = backup_restore(&o, &info, &err);
	if (o.fd != STDIN_FILENO)
		close(o.fd);
	if (r < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		json_object *j = info_json(&info);
		json_object_object_add(j, "restored_as", json_object_new_string(info.target));
		print_json(j, NULL);
	} else {
		printf("restored %s as %s at %s%s%s (%llu entries, %llu blocks, %llu from the base)\n",
		       info.h.container, info.target, info.h.tag, info.h.since_tag[0] ? " since " : "",
		       info.h.since_tag, (unsigned long long)info.entries, (unsigned long long)info.counts[BREC_BLOCK],
		       (unsigned long long)info.counts[BREC_BASE]);
	}
	backup_info_release(&info);
	return 0;
}
