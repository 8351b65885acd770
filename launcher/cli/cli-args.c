/* The one argument parser of every corral command (see cli.h, cli_parse). */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "container/state.h"

enum { GOPT_JSON = 0x10000, GOPT_ROOT };

static const struct option global_opts[] = {
	{ "json", no_argument, NULL, GOPT_JSON },
	{ "root", required_argument, NULL, GOPT_ROOT },
};

static int global_opt(int opt, const char *arg)
{
	if (opt == GOPT_JSON)
		cli_globals.json = true;
	else
		state_set_root(arg);
	return 0;
}

static int apply(const struct cli_spec *spec, int opt, const char *arg,
		 int (*on_opt)(int, const char *, void *), void *ctx)
{
	if (opt >= GOPT_JSON)
		return global_opt(opt, arg);
	return on_opt ? on_opt(opt, arg, ctx) : cli_usage_error(spec->cmd, "unknown option");
}

/* A long option: --name or --name=value. */
static int parse_long(const struct cli_spec *spec, int argc, char **argv, int *i,
		      int (*on_opt)(int, const char *, void *), void *ctx)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	const struct option *o = NULL;
	for (const struct option *p = spec->longopts; p && p->name && !o; p++)
		if (strlen(p->name) == len && !strncmp(p->name, a, len))
			o = p;
	for (size_t k = 0; !o && k < sizeof(global_opts) / sizeof(global_opts[0]); k++)
		if (strlen(global_opts[k].name) == len && !strncmp(global_opts[k].name, a, len))
			o = &global_opts[k];
	if (!o)
		return cli_usage_error(spec->cmd, "unknown option '%.*s'", (int)len + 2, argv[*i]);
	const char *arg = NULL;
	if (o->has_arg == no_argument && eq)
		return cli_usage_error(spec->cmd, "option '--%s' takes no value", o->name);
	if (o->has_arg == required_argument) {
		if (eq)
			arg = eq + 1;
		else if (*i + 1 < argc)
			arg = argv[++*i];
		else
			return cli_usage_error(spec->cmd, "option '--%s' needs a value", o->name);
	}
	(*i)++;
	return apply(spec, o->val, arg, on_opt, ctx);
}

/* Short options, clustered (-fq) or with a value (-t5, -t 5). */
static int parse_short(const struct cli_spec *spec, int argc, char **argv, int *i,
		       int (*on_opt)(int, const char *, void *), void *ctx)
{
	const char *s = argv[*i] + 1;
	const char *set = spec->shortopts ? spec->shortopts : "";
	for (; *s; s++) {
		const char *p = *s != ':' ? strchr(set, *s) : NULL;
		if (!p)
			return cli_usage_error(spec->cmd, "unknown option '-%c'", *s);
		if (p[1] == ':') {
			const char *arg = s[1] ? s + 1 : *i + 1 < argc ? argv[++*i] : NULL;
			if (!arg)
				return cli_usage_error(spec->cmd, "option '-%c' needs a value", *s);
			(*i)++;
			return apply(spec, *s, arg, on_opt, ctx);
		}
		int r = apply(spec, *s, NULL, on_opt, ctx);
		if (r)
			return r;
	}
	(*i)++;
	return 0;
}

int cli_parse(const struct cli_spec *spec, int argc, char **argv, int (*on_opt)(int opt, const char *arg, void *ctx),
	      void *ctx, struct cli_args *out)
{
	out->argc = 0;
	out->argv = NULL;
	char **all = calloc((size_t)argc + 2, sizeof(*all));
	if (!all) {
		fprintf(stderr, "corral: out of memory\n");
		return 125;
	}
	all[0] = argv[0];
	char **pos = all + 1;
	int n = 0, i = 1, r = 0;
	while (i < argc && r == 0) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			while (i < argc)
				pos[n++] = argv[i++];
			break;
		}
		/* "-" alone is an argument (stdin or stdout). */
		if (a[0] != '-' || a[1] == '\0') {
			pos[n++] = argv[i++];
			/* From here on the line is the container's command. */
			if (spec->command_after && n == spec->command_after) {
				/* NAME -- COMMAND: the -- only ends the options (a
				 * group leaves it to its subcommand). */
				if (!spec->group && i < argc && !strcmp(argv[i], "--"))
					i++;
				while (i < argc)
					pos[n++] = argv[i++];
			}
			continue;
		}
		r = a[1] == '-' ? parse_long(spec, argc, argv, &i, on_opt, ctx)
				: parse_short(spec, argc, argv, &i, on_opt, ctx);
	}
	if (r == 0 && n < spec->min_args)
		r = cli_usage_error(spec->cmd, "%s", spec->missing ? spec->missing : "missing arguments");
	if (r == 0 && spec->max_args >= 0 && n > spec->max_args && !spec->command_after)
		r = cli_usage_error(spec->cmd, "unexpected argument '%s'", pos[spec->max_args]);
	if (r) {
		free(all);
		return r;
	}
	/* A leaf command knows the whole line now, --root included: the
	 * state root is made safe before anything reads it. */
	if (!spec->group) {
		struct corral_error err = { 0 };
		if (state_secure_root(&err) < 0) {
			free(all);
			return cli_fail(&err);
		}
	}
	out->argc = n;
	out->argv = pos;
	return 0;
}

void cli_args_release(struct cli_args *a)
{
	if (a->argv)
		free(a->argv - 1);
	a->argv = NULL;
	a->argc = 0;
}

int cli_opt_flag(int opt, const char *arg, void *ctx)
{
	(void)opt;
	(void)arg;
	*(bool *)ctx = true;
	return 0;
}

int cli_opt_value(int opt, const char *arg, void *ctx)
{
	(void)opt;
	*(const char **)ctx = arg;
	return 0;
}

/* Whether argv[i], an option, takes the next word as its value. */
static bool takes_value(const struct cli_spec *spec, const char *a)
{
	if (a[1] == '-') {
		const char *eq = strchr(a + 2, '=');
		size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (eq)
			return false;
		for (const struct option *p = spec->longopts; p && p->name; p++)
			if (strlen(p->name) == len && !strncmp(p->name, a + 2, len))
				return p->has_arg == required_argument;
		for (size_t k = 0; k < sizeof(global_opts) / sizeof(global_opts[0]); k++)
			if (strlen(global_opts[k].name) == len && !strncmp(global_opts[k].name, a + 2, len))
				return global_opts[k].has_arg == required_argument;
		return false;
	}
	for (const char *c = a + 1; *c; c++) {
		const char *p = spec->shortopts && *c != ':' ? strchr(spec->shortopts, *c) : NULL;
		if (p && p[1] == ':')
			return c[1] == '\0'; /* else the value is attached */
	}
	return false;
}

bool cli_spec_wants_help(const struct cli_spec *spec, int argc, char **argv)
{
	int n = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			return false;
		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return true;
		if (a[0] != '-' || !a[1]) {
			if (spec->command_after && ++n >= spec->command_after)
				return false;
			continue;
		}
		if (takes_value(spec, a))
			i++;
	}
	return false;
}
