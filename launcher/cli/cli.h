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

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

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

/* Exit codes, as podman's and docker's: a command run in a container
 * exits with its own status; corral's own failure (bad usage, no such
 * container, a start that failed) is 125; a command that could not be
 * run is 126 (not executable) or 127 (not found). */
#define CLI_EXIT_ERROR 125
#define CLI_EXIT_CANNOT_EXEC 126
#define CLI_EXIT_NOT_FOUND 127

/* Prints the error and returns the exit code for it: 125, or 126/127
 * when err says a command could not be run (error.h exit_status). */
int cli_fail(const struct corral_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cli_wants_help(int argc, char **argv);

/* One command's syntax, for cli_parse. */
struct cli_spec {
	const char *cmd;	     /* for messages: "list", "snapshot rm" */
	const char *shortopts;	     /* as getopt's: "fq", "t:" (no leading '+') */
	const struct option *longopts; /* as getopt_long's, {0}-terminated; val is the id */
	int min_args, max_args;	     /* positional arguments; max_args -1: any number */
	const char *missing;	     /* the message when fewer than min_args */
	/* >0: after this many arguments the rest of the line is a command
	 * (the container's, or a group's subcommand), taken as it is. */
	int command_after;
	/* A command group (template, store, ...): its subcommand parses the
	 * rest, so the state root is not secured yet. */
	bool group;
};
struct cli_args {
	int argc;	/* positional arguments, options taken out */
	/* NULL-terminated; argv[0] is the first argument, argv[-1] the
	 * command's name: argv - 1 is an argv of the command as a main's. */
	char **argv;
};
/* The one parser of every corral command; argv[0] is the command name.
 * Options may come anywhere on the line, and so may the global ones
 * (--json, --root DIR), which it applies itself; `--` ends the options.
 * Each of the command's options goes to on_opt(val or short letter, its
 * value or NULL, ctx), which returns 0 or an exit code that stops the
 * parse (cli_usage_error's 125, cli_fail's).  Unknown options, a missing
 * value, too few or too many arguments are usage errors naming them.
 * Returns 0 with out filled (release it with cli_args_release), or the
 * exit code, the error printed.  -h/--help is left to cli_wants_help,
 * called first. */
int cli_parse(const struct cli_spec *spec, int argc, char **argv, int (*on_opt)(int opt, const char *arg, void *ctx),
	      void *ctx, struct cli_args *out);
void cli_args_release(struct cli_args *a);
static inline void cli_args_cleanup(struct cli_args *a)
{
	cli_args_release(a);
}
#define cleanup_cli_args __attribute__((cleanup(cli_args_cleanup)))
/* cli_parse for a command without options of its own: argc/argv become
 * its positional arguments as a main's (argv[0] the command). */
#define CLI_PARSE_POSITIONAL(cmdname, lo, hi, missing_msg, args)                                             \
	do {                                                                                                  \
		struct cli_spec spec_ = { .cmd = (cmdname), .min_args = (lo), .max_args = (hi),               \
					  .missing = (missing_msg) };                                          \
		int rc_ = cli_parse(&spec_, argc, argv, NULL, NULL, &(args));                                 \
		if (rc_)                                                                                      \
			return rc_;                                                                           \
		argc = (args).argc + 1;                                                                       \
		argv = (args).argv - 1;                                                                       \
	} while (0)
/* cli_wants_help for a command with a spec: -h or --help among its own
 * options only -- not an option's value, not after --, not in a
 * container's command (corral exec web ls --help runs ls --help). */
bool cli_spec_wants_help(const struct cli_spec *spec, int argc, char **argv);
/* An on_opt for a command whose one option is a flag: sets *(bool *)ctx. */
int cli_opt_flag(int opt, const char *arg, void *ctx);
/* An on_opt for a command whose one option takes a value: *(const char **)ctx. */
int cli_opt_value(int opt, const char *arg, void *ctx);

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

struct json_object;
/* Prints o as the CLI's JSON -- pretty, "/" never escaped -- with a
 * newline, and drops the reference.  Every --json output goes through
 * it. */
void cli_print_json(FILE *out, struct json_object *o);
/* The same object for people: a "key: value" line per value, nested keys
 * dotted (state.status), arrays space-separated, null as "-". */
void cli_print_fields(FILE *out, struct json_object *o);
/* A JSON string, or null for NULL or "" (unset is null, never ""). */
struct json_object *cli_json_string(const char *s);

struct container_config;
/* Makes a container's directories and saves its config (create, clone,
 * restore).  own_snapshots: how many snapshots under c->name the caller
 * itself just committed (a restore's one); any more are an earlier
 * container's, and the name is refused. */
int cli_create_container(struct container_config *c, size_t own_snapshots, struct corral_error *err);
/* Sorted names of all containers (caller frees each and the array); -errno. */
int cli_container_names(char ***ret, size_t *count);

#endif
