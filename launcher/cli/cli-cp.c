/* corral cp NAME:PATH HOSTPATH | HOSTPATH NAME:PATH (start/cp.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "start/start.h"
#include "template/template.h"

/* "NAME:PATH" -> name (into buf) and path; false when arg is a host path
 * (no colon before the first '/', as docker cp). */
static bool split(const char *arg, char *name, size_t len, const char **path)
{
	const char *colon = strchr(arg, ':');
	const char *slash = strchr(arg, '/');
	if (!colon || colon == arg || (slash && slash < colon) || (size_t)(colon - arg) >= len)
		return false;
	memcpy(name, arg, (size_t)(colon - arg));
	name[colon - arg] = '\0';
	*path = colon + 1;
	return true;
}

int cmd_cp(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral cp NAME:PATH HOSTPATH\n       corral cp HOSTPATH NAME:PATH\n\n"
		       "Copies a file or a directory (always recursively, modes kept) between the host\n"
		       "and a running container's root filesystem. Container paths are resolved inside\n"
		       "the container: its symlinks, absolute or with .., stay in its tree; below PATH\n"
		       "symlinks are copied as symlinks. Coming out, set-uid/set-gid bits are dropped;\n"
		       "extended attributes never cross; devices, fifos and sockets are skipped.\n"
		       "An existing directory as the destination receives the source under its name.\n"
		       "Bind mounts, /proc, /sys and /dev are not part of the root filesystem.\n");
		return 0;
	}
	cleanup_cli_args struct cli_args args = { 0 };
	CLI_PARSE_POSITIONAL("cp", 2, 2, "expected a source and a destination", args);
	char a[CORRAL_NAME_MAX + 2], b[CORRAL_NAME_MAX + 2];
	const char *pa, *pb;
	bool ca = split(argv[1], a, sizeof(a), &pa), cb = split(argv[2], b, sizeof(b), &pb);
	if (ca == cb)
		return cli_usage_error("cp", ca ? "both sides name a container: one must be a host path"
					      : "neither side names a container (NAME:PATH)");
	struct corral_error err = { 0 };
	const char *name = ca ? a : b, *cpath = ca ? pa : pb, *host = ca ? argv[2] : argv[1];
	size_t skipped = 0;
	if (!*cpath)
		return cli_usage_error("cp", "no path after '%s:'", name);
	if (name_validate("container", name, &err) < 0 || container_cp(name, cpath, host, cb, &skipped, &err) < 0)
		return cli_fail(&err);
	if (skipped)
		fprintf(stderr, "corral: %zu device%s, fifo%s or socket%s left out\n", skipped, skipped == 1 ? "" : "s",
			skipped == 1 ? "" : "s", skipped == 1 ? "" : "s");
	return 0;
}
