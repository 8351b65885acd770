/* corral pause NAME... / corral resume NAME...: the cgroup freezer (the
 * cut a snapshot makes, held until resume).  list and inspect show a
 * paused container as "paused"; stop thaws it first. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "start/start.h"
#include "template/template.h"

static int pause_or_resume(const char *cmd, bool paused, int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: corral %s NAME...\n\n%s every process of a running container (the cgroup "
		       "freezer;\nits cowfs daemon goes on). A paused container shows as \"paused\" in list "
		       "and\ninspect; it can be stopped (stop thaws it first) and removed.\n",
		       cmd, paused ? "Freezes" : "Thaws");
		return 0;
	}
	cleanup_cli_args struct cli_args args = { 0 };
	CLI_PARSE_POSITIONAL(cmd, 1, -1, "no container name given", args);
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		struct corral_error err = { 0 };
		if (name_validate("container", argv[i], &err) < 0 || container_pause(argv[i], paused, &err) < 0)
			rc = cli_fail(&err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

int cmd_pause(int argc, char **argv)
{
	return pause_or_resume("pause", true, argc, argv);
}

int cmd_resume(int argc, char **argv)
{
	return pause_or_resume("resume", false, argc, argv);
}
