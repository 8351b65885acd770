/* corral rename OLD NEW: a stopped container's new name (start/rename.c
 * says what moves). */
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "start/start.h"

int cmd_rename(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral rename OLD NEW\n\nRenames a stopped container: its directory, its config, "
		       "its store root, its\nuser namespace range and, when its hostname was its name, its "
		       "hostname\n(/etc/hostname and /etc/hosts in its layer are rewritten, as a clone's are).\n"
		       "A container with snapshots is refused: they are named after it (remove them,\nor "
		       "`corral clone OLD NEW`). All or nothing: a failure leaves OLD as it was.\n");
		return 0;
	}
	cleanup_cli_args struct cli_args args = { 0 };
	CLI_PARSE_POSITIONAL("rename", 2, 2, "expected OLD and NEW container names", args);
	struct corral_error err = { 0 };
	if (container_rename(argv[1], argv[2], &err) < 0)
		return cli_fail(&err);
	printf("%s\n", argv[2]);
	return 0;
}
