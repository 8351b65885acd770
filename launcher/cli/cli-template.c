/* corral template import | list | rm | ingest */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <json-c/json.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "cli.h"
#include "container/state.h"
#include "template/template-ingest.h"
#include "template/template.h"

static void template_usage(FILE *out)
{
	fputs("usage: corral template import NAME --dir DIR | --tar FILE | --oci PATH\n"
	      "                                | --debootstrap SUITE [--mirror URL] [--variant V] [--include PKGS]\n"
	      "       corral [--json] template list\n"
	      "       corral template rm NAME\n"
	      "       corral [--json] template ingest NAME\n"
	      "\n"
	      "import  makes a template from a directory, a tar archive (plain, gzip, xz or\n"
	      "        zstd), a Debian suite via debootstrap, or an OCI image (an OCI layout\n"
	      "        directory or a `podman save` archive; layers applied with whiteouts).\n"
	      "        debootstrap: --variant minbase (the default), buildd or default\n"
	      "        (debootstrap's standard set); --include PKG,PKG,... adds packages\n"
	      "        (a bootable template: --include systemd-sysv,iproute2,ifupdown)\n"
	      "list    lists templates (the built-in 'default' is made on first use)\n"
	      "rm      removes a template (and its root in the store); refused while a\n"
	      "        container uses it\n"
	      "ingest  puts every regular file of the template into the host's block store\n"
	      "        (<root>/store) under the root template.NAME, so that containers'\n"
	      "        blocks dedup against the template's; prints files, bytes, the new\n"
	      "        bytes stored and MB/s.  Again: stores nothing new\n",
	      out);
}

/* Archives are unpacked by corral-import (see corral-import.c): beside
 * this binary (build tree or install), or $CORRAL_IMPORT. */
static int run_import_helper(const char *name, const char *kind, const char *src)
{
	char helper[PATH_MAX];
	struct corral_error err = { 0 };
	if (child_companion_path(helper, sizeof(helper), "corral-import", "CORRAL_IMPORT", &err) < 0)
		return cli_fail(&err);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "corral: fork: %s\n", strerror(errno));
		return CLI_EXIT_ERROR;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL); /* corral ignores it; the helper must not */
		execl(helper, "corral-import", state_root(), name, kind, src, (char *)NULL);
		fprintf(stderr, "corral: cannot run %s: %s\n", helper, strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return CLI_EXIT_ERROR;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("%s\n", name);
		return 0;
	}
	return CLI_EXIT_ERROR; /* corral-import said why */
}

struct import_ctx {
	const char *kind, *src;
	struct template_debootstrap d;
};

static int import_opt(int opt, const char *arg, void *ctx)
{
	struct import_ctx *x = ctx;
	static const char *const kinds[] = { "--dir", "--tar", "--oci", "--debootstrap" };
	static const char *const extra[] = { "--mirror", "--variant", "--include" };
	if (opt < 4) {
		if (x->kind)
			return cli_usage_error("template import", "takes one source option");
		x->kind = kinds[opt];
		x->src = arg;
		return 0;
	}
	const char **slot = opt == 4 ? &x->d.mirror : opt == 5 ? &x->d.variant : &x->d.include;
	if (*slot)
		return cli_usage_error("template import", "%s given twice", extra[opt - 4]);
	*slot = arg;
	return 0;
}

static int template_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 0 },	   { "tar", required_argument, NULL, 1 },
		{ "oci", required_argument, NULL, 2 },	   { "debootstrap", required_argument, NULL, 3 },
		{ "mirror", required_argument, NULL, 4 },  { "variant", required_argument, NULL, 5 },
		{ "include", required_argument, NULL, 6 }, { NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "template import", .longopts = opts, .min_args = 1,
					      .max_args = 1, .missing = "expected NAME and one source option" };
	struct corral_error err = { 0 };
	struct import_ctx x = { 0 };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, import_opt, &x, &a);
	if (r)
		return r;
	/* The process ends with the command: a.argv needs no release. */
	const char *name = a.argv[0], *kind = x.kind, *src = x.src;
	if (!kind)
		return cli_usage_error("template import", "expected NAME and one source option");
	/* debootstrap's options, each once, in any order. */
	struct template_debootstrap d = x.d;
	d.suite = src;
	if (strcmp(kind, "--debootstrap") && (d.mirror || d.variant || d.include))
		return cli_usage_error("template import", "%s goes with --debootstrap only",
				       d.mirror ? "--mirror" : d.variant ? "--variant" : "--include");
	if (name_validate("template", name, &err) < 0)
		return cli_fail(&err);
	if (!strcmp(kind, "--dir"))
		r = template_import_dir(state_root(), name, src, &err);
	else if (!strcmp(kind, "--debootstrap"))
		r = template_import_debootstrap(state_root(), name, &d, &err);
	else if (!strcmp(kind, "--tar") || !strcmp(kind, "--oci"))
		return run_import_helper(name, kind, src);
	else
		return cli_usage_error("template import", "unknown source '%s'", kind);
	if (r < 0)
		return cli_fail(&err);
	printf("%s\n", name);
	return 0;
}

static int template_list_cmd(int argc, char **argv)
{
	static const struct cli_spec spec = { .cmd = "template list" };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (r)
		return r;
	cli_args_release(&a);
	struct corral_error err = { 0 };
	struct template_info *t;
	size_t n;
	if (template_list(state_root(), &t, &n, &err) < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(t[i].name));
			json_object_object_add(o, "kind", json_object_new_string(t[i].kind));
			json_object_object_add(o, "source", json_object_new_string(t[i].source));
			json_object_object_add(o, "created", json_object_new_string(t[i].created));
			json_object_array_add(arr, o);
		}
		cli_print_json(stdout, arr);
	} else {
		printf("%-20s %-12s %-22s %s\n", "NAME", "KIND", "CREATED", "SOURCE");
		for (size_t i = 0; i < n; i++)
			printf("%-20s %-12s %-22s %s\n", t[i].name, t[i].kind, t[i].created, t[i].source);
	}
	free(t);
	return 0;
}

static int template_ingest_cmd(int argc, char **argv)
{
	struct corral_error err = { 0 };
	static const struct cli_spec spec = { .cmd = "template ingest", .min_args = 1, .max_args = 1,
					      .missing = "expected one template name" };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (r)
		return r;
	argv = a.argv - 1; /* argv[1]: the name; the process ends with the command */
	struct template_ingest_result res;
	if (template_ingest(state_root(), argv[1], &res, &err) < 0)
		return cli_fail(&err);
	double mbs = res.seconds > 0 ? (double)res.bytes / res.seconds / 1e6 : 0.0;
	if (cli_globals.json) {
		char rname[128];
		snprintf(rname, sizeof(rname), TEMPLATE_STORE_ROOT_PREFIX "%s", argv[1]);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "template", json_object_new_string(argv[1]));
		json_object_object_add(o, "root", json_object_new_string(rname));
		json_object_object_add(o, "files", json_object_new_int64(res.files));
		json_object_object_add(o, "bytes", json_object_new_int64(res.bytes));
		json_object_object_add(o, "new_bytes", json_object_new_int64(res.new_bytes));
		json_object_object_add(o, "skipped", json_object_new_int64(res.skipped));
		json_object_object_add(o, "other_fs", json_object_new_int64(res.other_fs));
		json_object_object_add(o, "seconds", json_object_new_double(res.seconds));
		json_object_object_add(o, "mb_per_s", json_object_new_double(mbs));
		cli_print_json(stdout, o);
		return 0;
	}
	printf("template %s: %llu files, %llu bytes, %llu new bytes stored%s, %.2f s, %.1f MB/s\n", argv[1],
	       (unsigned long long)res.files, (unsigned long long)res.bytes, (unsigned long long)res.new_bytes,
	       res.new_bytes ? "" : " (nothing new: already in the store)", res.seconds, mbs);
	if (res.skipped)
		printf("skipped %llu entries that are not regular files (symlinks, devices, fifos, sockets)\n",
		       (unsigned long long)res.skipped);
	if (res.other_fs)
		printf("skipped %llu directories on another filesystem\n", (unsigned long long)res.other_fs);
	return 0;
}

int cmd_template(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		template_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 125 : 0;
	}
	static const struct cli_spec spec = { .cmd = "template", .min_args = 1, .max_args = -1,
					      .missing = "expected a subcommand", .command_after = 1, .group = true };
	struct cli_args ga;
	int gr = cli_parse(&spec, argc, argv, NULL, NULL, &ga);
	if (gr)
		return gr;
	argc = ga.argc + 1;
	argv = ga.argv - 1; /* argv[1] is the subcommand, as below expects */
	if (!strcmp(argv[1], "import"))
		return template_import(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list") || !strcmp(argv[1], "ls"))
		return template_list_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ingest"))
		return template_ingest_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm") || !strcmp(argv[1], "remove")) {
		struct corral_error err = { 0 };
		static const struct cli_spec rspec = { .cmd = "template rm", .min_args = 1, .max_args = 1,
						       .missing = "expected one template name" };
		struct cli_args a;
		int r = cli_parse(&rspec, argc - 1, argv + 1, NULL, NULL, &a);
		if (r)
			return r;
		argv = a.argv - 2; /* argv[2]: the name */
		if (template_remove(state_root(), argv[2], &err) < 0)
			return cli_fail(&err);
		/* The template is gone; its blocks go at the next store gc. */
		if (template_ingest_forget(state_root(), argv[2], &err) < 0) {
			err_wrap(&err, "template '%s' removed, but its store root remains", argv[2]);
			return cli_fail(&err);
		}
		printf("%s\n", argv[2]);
		return 0;
	}
	return cli_usage_error("template", "unknown subcommand '%s'", argv[1]);
}
