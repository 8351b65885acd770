/* corral: dense OS-level containers from one template. */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fileio.h"
#include "start/start.h"
#include "container/state.h"

struct cli_globals cli_globals;

static void usage(FILE *out)
{
	fputs("usage: corral [--root DIR] [--json] COMMAND [ARGS...]\n"
	      "\n"
	      "Containers:\n"
	      "  create [OPTIONS] NAME [--] [COMMAND [ARG...]]  create a container from a template\n"
	      "  start NAME                  start a created or stopped container\n"
	      "  run [OPTIONS] [--name NAME] [--] COMMAND...   create, start, wait, remove\n"
	      "  stop [-t SECONDS] NAME      SIGTERM, then SIGKILL after the timeout (default 10)\n"
	      "  restart [-t SECONDS] NAME   stop, then start\n"
	      "  kill [-s SIGNAL] NAME       send a signal to the container's command\n"
	      "  exec [-t] NAME COMMAND...   run a command inside a running container\n"
	      "  list (ps)                   list containers\n"
	      "  inspect NAME                configuration and state\n"
	      "  stats [NAME...]             memory, CPU, pids, disk and I/O use\n"
	      "  rm [-f] NAME...             remove containers (-f: stop them first)\n"
	      "  logs [-f] [--tail N] NAME   the console log (-f: follow until it stops)\n"
	      "  pause|resume NAME...        freeze or thaw a running container\n"
	      "  update NAME --memory|--cpus|--pids ...  new limits, live and saved\n"
	      "  top NAME                    the container's processes\n"
	      "  rename OLD NEW              rename a stopped container\n"
	      "  cp NAME:PATH HOSTPATH | HOSTPATH NAME:PATH  copy files in or out\n"
	      "  attach NAME                 the live console (Ctrl-P Ctrl-Q detaches)\n"
	      "\n"
	      "Templates:\n"
	      "  template import|list|rm     manage templates (see corral template --help)\n"
	      "\n"
	      "Host:\n"
	      "  host show                   host-wide settings corral uses (FUSE io_uring)\n"
	      "  host setup --io-uring on|off  change one, saying what changed\n"
	      "\n"
	      "Store:\n"
	      "  store stats|gc|fsck [--repair]  the host's block store (see corral store --help)\n"
	      "  snapshot NAME [TAG] | list NAME | rm NAME TAG  snapshots of a container's tree\n"
	      "  rollback NAME TAG [--restart]  the container's tree becomes the snapshot's\n"
	      "  clone SRC NEW [--snapshot TAG]  a new container sharing SRC's blocks\n"
	      "\n"
	      "Backups:\n"
	      "  backup NAME [--since TAG|last] -o FILE|-  a backup stream (see corral backup --help)\n"
	      "  backup --all -o DIR         one stream per container\n"
	      "  restore FILE|- [--as NAME]  check a stream whole, then recreate its container\n"
	      "  verify FILE|-               check a stream and show what it holds\n"
	      "\n"
	      "Global options:\n"
	      "  --root DIR   state directory (default $CORRAL_ROOT or /var/lib/corral)\n"
	      "  --json       machine-readable output for list, inspect, stats, template list,\n"
	      "               host show, store stats|gc|fsck, snapshot, backup, restore, verify\n"
	      "  -h, --help   help; every command takes --help too\n"
	      "  --version    show the version\n",
	      out);
}

int cli_fail(const struct corral_error *err)
{
	fprintf(stderr, "corral: %s\n", err->msg[0] ? err->msg : "unknown error");
	/* As podman and docker: 126/127 for a command that could not be
	 * run, 125 for corral's own failures. */
	return err->exit_status == 126 || err->exit_status == 127 ? err->exit_status : CLI_EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "corral%s%s: ", *cmd ? " " : "", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see corral%s%s --help)\n", *cmd ? " " : "", cmd);
	va_end(ap);
	return 125;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "create", cmd_create }, { "run", cmd_run }, { "start", cmd_start }, { "stop", cmd_stop },
	{ "restart", cmd_restart }, { "kill", cmd_kill }, { "exec", cmd_exec }, { "rm", cmd_rm },
	{ "list", cmd_list }, { "ps", cmd_list }, { "inspect", cmd_inspect }, { "stats", cmd_stats },
	{ "template", cmd_template }, { "host", cmd_host }, { "store", cmd_store },
	{ "snapshot", cmd_snapshot }, { "rollback", cmd_rollback },
	{ "clone", cmd_clone }, { "backup", cmd_backup }, { "restore", cmd_restore },
	{ "verify", cmd_verify },
	{ "logs", cmd_logs },
	{ "pause", cmd_pause },
	{ "resume", cmd_resume },
	{ "update", cmd_update },
	{ "top", cmd_top },
	{ "rename", cmd_rename },
	{ "cp", cmd_cp },
	{ "attach", cmd_attach },
};

/* In a build tree, corral finds cowfs and the default-template script
 * beside itself; installed, it uses the configured paths.  The
 * environment (CORRAL_COWFS, CORRAL_TEMPLATE_SCRIPT) always wins; the
 * cowfs path is a parsed option from here on (cli_globals.cowfs). */
static void locate_companions(void)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	/* Read here, once: start gets the path as an argument. */
	const char *cowfs = getenv("CORRAL_COWFS");
	if (cowfs && *cowfs)
		snprintf(cli_globals.cowfs, sizeof(cli_globals.cowfs), "%s", cowfs);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/../template/make-default-template", exe);
	if (!getenv("CORRAL_TEMPLATE_SCRIPT") && access(path, X_OK) == 0)
		setenv("CORRAL_TEMPLATE_SCRIPT", path, 0);
	snprintf(path, sizeof(path), "%s/../cowfs/cowfs", exe);
	size_t len = strlen(path);
	if (!cli_globals.cowfs[0] && len < sizeof(cli_globals.cowfs) && access(path, X_OK) == 0)
		memcpy(cli_globals.cowfs, path, len + 1);
}

static int main_opt(int opt, const char *arg, void *ctx)
{
	(void)arg;
	if (!*(int *)ctx)
		*(int *)ctx = opt;
	return 0;
}

int main(int argc, char **argv)
{
	/* A child that failed early closes its end of our pipes: see that as
	 * EPIPE and clean up, instead of dying on SIGPIPE mid-start. */
	signal(SIGPIPE, SIG_IGN);
	locate_companions();
	start_set_cmdline_area(argc, argv);

	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* The global options before the command; the command's own parse
	 * takes them anywhere after it too. */
	static const struct cli_spec spec = { .cmd = "", .shortopts = "h", .longopts = opts,
					      .max_args = -1, .command_after = 1, .group = true };
	int which = 0;
	struct cli_args args;
	int r = cli_parse(&spec, argc, argv, main_opt, &which, &args);
	if (r)
		return r;
	if (which == 'h' || which == 'V') {
		if (which == 'h')
			usage(stdout);
		else
			printf("corral %s\n", PACKAGE_VERSION);
		cli_args_release(&args);
		return 0;
	}
	if (args.argc == 0) {
		usage(stderr);
		cli_args_release(&args);
		return 125;
	}
	r = -1;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]) && r < 0; k++)
		if (!strcmp(args.argv[0], commands[k].name))
			r = commands[k].fn(args.argc, args.argv);
	if (r < 0) {
		fprintf(stderr, "corral: unknown command '%s' (see corral --help)\n", args.argv[0]);
		r = 125;
	}
	cli_args_release(&args);
	return r;
}
