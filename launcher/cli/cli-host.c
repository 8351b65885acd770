/* corral host show / corral host setup: host-wide settings corral uses but
 * does not own.
 *
 * FUSE over io_uring is offered by the kernel's fuse module only with its
 * enable_uring parameter set; it is off by default.  Turning it on changes
 * every FUSE filesystem of the host that asks for the ring (not only
 * corral's), so it is the administrator's decision: corral never sets it
 * by itself, only here, on request, saying what it changed.  The setting
 * lasts until reboot; a mount keeps what it negotiated at its FUSE INIT. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"

#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

/* 1 on, 0 off, -errno (-ENOENT: the kernel has no FUSE over io_uring). */
static int io_uring_get(void)
{
	char v[8] = "";
	cleanup_close int fd = open(ENABLE_URING_PARAM, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, v, sizeof(v) - 1) < 0)
		return -errno;
	return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

static int io_uring_set(bool on)
{
	cleanup_close int fd = open(ENABLE_URING_PARAM, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, on ? "Y\n" : "N\n", 2) != 2)
		return errno ? -errno : -EIO;
	return 0;
}

static const char *on_off(int v)
{
	return v > 0 ? "on" : "off";
}

static int io_uring_error(int e, const char *what)
{
	if (e == -ENOENT)
		fprintf(stderr, "corral: %s: this kernel has no FUSE over io_uring (%s missing: "
			"Linux 6.14 or later with CONFIG_FUSE_IO_URING)\n", what, ENABLE_URING_PARAM);
	else
		fprintf(stderr, "corral: %s: %s: %s\n", what, ENABLE_URING_PARAM, strerror(-e));
	return CLI_EXIT_ERROR;
}

static int host_show(void)
{
	int v = io_uring_get();
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "fuse_io_uring",
				       v < 0 ? json_object_new_null() : json_object_new_boolean(v > 0));
		json_object_object_add(o, "fuse_io_uring_parameter", json_object_new_string(ENABLE_URING_PARAM));
		cli_print_json(stdout, o);
		return 0;
	}
	if (v < 0)
		printf("fuse io_uring: unavailable (%s: %s)\n", ENABLE_URING_PARAM, strerror(-v));
	else
		printf("fuse io_uring: %s (%s)\n", on_off(v), ENABLE_URING_PARAM);
	return 0;
}

static int io_uring_opt(int opt, const char *v, void *ctx)
{
	(void)opt;
	if (!strcmp(v, "on"))
		*(int *)ctx = 1;
	else if (!strcmp(v, "off"))
		*(int *)ctx = 0;
	else
		return cli_usage_error("host setup", "--io-uring takes on or off, not '%s'", v);
	return 0;
}

static int host_setup(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "io-uring", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "host setup", .longopts = opts };
	int want = -1;
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, io_uring_opt, &want, &a);
	if (pr)
		return pr;
	cli_args_release(&a);
	if (want < 0)
		return cli_usage_error("host setup", "nothing to set up: give --io-uring on|off");
	int was = io_uring_get();
	if (was < 0)
		return io_uring_error(was, "cannot read the FUSE io_uring setting");
	if (was == want) {
		printf("fuse io_uring: already %s (%s), nothing changed\n", on_off(was), ENABLE_URING_PARAM);
		return 0;
	}
	int r = io_uring_set(want);
	if (r < 0)
		return io_uring_error(r, "cannot change the FUSE io_uring setting");
	printf("fuse io_uring: %s -> %s (%s; until reboot; mounts made before keep theirs)\n", on_off(was),
	       on_off(want), ENABLE_URING_PARAM);
	return 0;
}

int cmd_host(int argc, char **argv)
{
	if (cli_wants_help(argc, argv) || argc < 2) {
		printf("usage: corral [--json] host show\n"
		       "       corral host setup --io-uring on|off\n"
		       "\n"
		       "Host-wide settings that corral uses but never changes by itself.\n"
		       "\n"
		       "  show                    print them\n"
		       "  setup --io-uring on|off let the kernel offer FUSE over io_uring (the fuse\n"
		       "                          module's enable_uring, for every FUSE filesystem of\n"
		       "                          the host), so that cowfs mounts made from then on use\n"
		       "                          it; prints what it changed.  Until reboot.\n");
		return argc < 2 ? 125 : 0;
	}
	static const struct cli_spec gspec = { .cmd = "host", .min_args = 1, .max_args = -1,
					       .missing = "expected a subcommand", .command_after = 1, .group = true };
	struct cli_args ga;
	int gr = cli_parse(&gspec, argc, argv, NULL, NULL, &ga);
	if (gr)
		return gr;
	/* The process ends with the command: ga needs no release. */
	argc = ga.argc + 1;
	argv = ga.argv - 1;
	if (!strcmp(argv[1], "show")) {
		static const struct cli_spec spec = { .cmd = "host show" };
		struct cli_args a;
		int r = cli_parse(&spec, argc - 1, argv + 1, NULL, NULL, &a);
		return r ? r : host_show();
	}
	if (!strcmp(argv[1], "setup"))
		return host_setup(argc - 1, argv + 1);
	return cli_usage_error("host", "unknown subcommand '%s'", argv[1]);
}
