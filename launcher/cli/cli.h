/* The corral command line: one function per subcommand, each taking its own
 * argv (argv[0] = the subcommand name) and returning the process exit code.
 * Only the CLI prints; errors go to stderr as "corral: <what failed>".
 *
 * Module cli (the corral program).  Owns: argument parsing, --help on every
 * level, --json output and exit codes; the other modules hand their
 * errors up in a struct corral_error for it to print.
 * May call: backup, snapshot, start, container, template, net, security, cgroup, store, common. */
#ifndef CORRAL_CLI_H
#define CORRAL_CLI_H

#include <limits.h>
#include <stdbool.h>

#include "error.h"

struct cli_globals {
	bool json;
	/* The cowfs program for start: $CORRAL_COWFS (the user's override),
	 * else cowfs beside corral in a build tree; "" = the installed one. */
	char cowfs[PATH_MAX];
};
extern struct cli_globals cli_globals; /* parsed options */

static inline const char *cli_cowfs(void)
{
	return cli_globals.cowfs[0] ? cli_globals.cowfs : NULL;
}

/* Prints the error and returns the exit code for it (1, or 125 for usage). */
int cli_fail(const struct corral_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cli_wants_help(int argc, char **argv);

int cmd_create(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_update(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_rename(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_attach(int argc, char **argv);
/* start --all-autostart (cli-autostart.c). */
int cli_start_autostart(void);

struct container_config;
/* Makes a container's directories and saves its config (create, clone,
 * restore).  own_snapshots: how many snapshots under c->name the caller
 * itself just committed (a restore's one); any more are an earlier
 * container's, and the name is refused. */
int cli_create_container(struct container_config *c, size_t own_snapshots, struct corral_error *err);
/* Sorted names of all containers (caller frees each and the array); -errno. */
int cli_container_names(char ***ret, size_t *count);

#endif
