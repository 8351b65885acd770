/* corral export-layer NAME TAG -o FILE|-: a snapshot as an OCI image-spec
 * layer (backup/backup-oci.h).  A thin wrapper, not in corral --help: what
 * `corral backup NAME --format oci-layer` does, until that command folds it
 * in. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup-oci.h"
#include "cleanup.h"
#include "cli.h"

static void export_usage(FILE *out)
{
	fputs("usage: corral [--json] export-layer NAME TAG -o FILE|-\n"
	      "\n"
	      "Writes snapshot TAG of container NAME as an OCI image layer (an uncompressed\n"
	      "tar: the container's changes to its template, deletions as .wh. whiteouts,\n"
	      "replaced directories with .wh..wh..opq) to FILE, or to standard output with\n"
	      "-.  Apply it over the template's image with podman, docker or umoci.  A file\n"
	      "named .wh.* in the container cannot be exported (it would read as a\n"
	      "deletion): the command refuses and names it.  The same as\n"
	      "`corral backup NAME --format oci-layer`.\n",
	      out);
}

/* FILE is written as FILE.tmp.PID beside it and renamed into place once
 * whole and synced: a failed export never leaves a FILE to be applied. */
static int export_to_file(const char *name, const char *tag, const char *path, struct backup_oci_result *res,
			  struct corral_error *err)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return err_plain(err, ENAMETOOLONG, "%s: path too long", path);
	cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(err, errno, "creating %s", tmp);
	int r = backup_oci_layer(name, tag, fd, res, err);
	if (r == 0 && fsync(fd) < 0)
		r = err_set(err, errno, "syncing %s", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = err_set(err, errno, "renaming %s to %s", tmp, path);
	if (r < 0)
		unlink(tmp);
	return r;
}

int cmd_export_layer(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		export_usage(stdout);
		return 0;
	}
	if (argc != 5 || strcmp(argv[3], "-o"))
		return cli_usage_error("export-layer", "takes NAME TAG -o FILE|-");
	const char *name = argv[1], *tag = argv[2], *out = argv[4];
	struct corral_error err = { 0 };
	struct backup_oci_result res;
	int r;
	if (!strcmp(out, "-")) {
		if (isatty(STDOUT_FILENO))
			return cli_usage_error("export-layer", "refusing to write a tar to a terminal");
		fflush(stdout);
		r = backup_oci_layer(name, tag, STDOUT_FILENO, &res, &err);
	} else {
		r = export_to_file(name, tag, out, &res, &err);
	}
	if (r < 0)
		return cli_fail(&err);
	/* The summary goes where the tar does not. */
	FILE *info = strcmp(out, "-") ? stdout : stderr;
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "container", json_object_new_string(name));
		json_object_object_add(o, "tag", json_object_new_string(tag));
		json_object_object_add(o, "entries", json_object_new_int64((int64_t)res.entries));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res.bytes));
		fprintf(info, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
	} else if (info == stdout) {
		printf("exported snapshot %s of %s: %llu entries, %llu bytes\n", tag, name,
		       (unsigned long long)res.entries, (unsigned long long)res.bytes);
	}
	return 0;
}
