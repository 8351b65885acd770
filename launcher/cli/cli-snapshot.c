/* corral snapshot NAME [TAG] | snapshot list NAME | snapshot rm NAME TAG:
 * snapshots of a container's upper layer in the block store (snapshot/). */
#include "config.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "container/container-etc.h"
#include "container/container-config.h"
#include "container/state.h"
#include "snapshot/snapshot.h"
#include "start/start.h"

static void snapshot_usage(FILE *out)
{
	fputs("usage: corral [--json] snapshot NAME [TAG]\n"
	      "       corral [--json] snapshot list NAME\n"
	      "       corral snapshot rm NAME TAG\n"
	      "\n"
	      "Takes a snapshot of container NAME's tree (its changes to the template) into\n"
	      "the block store, stopped or running (a running container is frozen for the\n"
	      "cut; the freeze time is printed: a first pass reads the tree unfrozen, the\n"
	      "frozen second pass reads again only what changed since).  TAG\n"
	      "([A-Za-z0-9_-]{1,64}) defaults to the UTC time, e.g. 20260102T030405Z.  rm removes the snapshot; its blocks are\n"
	      "freed by `corral store gc` when nothing else uses them.\n",
	      out);
}

static int snapshot_take(const char *name, const char *tag_arg)
{
	char tag[SNAPSHOT_TAG_MAX + 1];
	if (!tag_arg) {
		time_t t = time(NULL);
		struct tm tm;
		strftime(tag, sizeof(tag), "%Y%m%dT%H%M%SZ", gmtime_r(&t, &tm));
		tag_arg = tag;
	}
	struct corral_error err = { 0 };
	struct snapshot_result res;
	if (snapshot_create(name, tag_arg ? tag_arg : tag, &res, &err) < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "container", json_object_new_string(name));
		json_object_object_add(o, "tag", json_object_new_string(tag_arg));
		json_object_object_add(o, "entries", json_object_new_int64(res.entries));
		json_object_object_add(o, "files", json_object_new_int64(res.files));
		json_object_object_add(o, "files_reused", json_object_new_int64(res.files_reused));
		json_object_object_add(o, "bytes_put", json_object_new_int64(res.bytes_put));
		json_object_object_add(o, "frozen", json_object_new_boolean(res.frozen));
		json_object_object_add(o, "passes", json_object_new_int(res.passes));
		json_object_object_add(o, "entries_reused", json_object_new_int64(res.entries_reused));
		if (res.frozen) {
			json_object_object_add(o, "freeze_ms", json_object_new_double(res.freeze_ms));
			json_object_object_add(o, "bytes_put_frozen", json_object_new_int64(res.bytes_put_frozen));
		}
		cli_print_json(stdout, o);
		return 0;
	}
	printf("snapshot %s of %s: %llu entries, %llu files (%llu reused from the store), %llu bytes read\n", tag_arg,
	       name, (unsigned long long)res.entries, (unsigned long long)res.files,
	       (unsigned long long)res.files_reused, (unsigned long long)res.bytes_put);
	if (res.frozen && res.passes == 2)
		printf("frozen for %.1f ms (second pass: %llu of %llu entries unchanged since the first, %llu bytes "
		       "read frozen)\n", res.freeze_ms, (unsigned long long)res.entries_reused,
		       (unsigned long long)res.entries, (unsigned long long)res.bytes_put_frozen);
	else if (res.frozen)
		printf("frozen for %.1f ms\n", res.freeze_ms);
	return 0;
}

static int snapshot_list_cmd(const char *name)
{
	struct corral_error err = { 0 };
	char **tags;
	size_t n;
	if (snapshot_list(name, &tags, &n, &err) < 0)
		return cli_fail(&err);
	json_object *arr = cli_globals.json ? json_object_new_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		if (arr)
			json_object_array_add(arr, json_object_new_string(tags[i]));
		else
			printf("%s\n", tags[i]);
		free(tags[i]);
	}
	free(tags);
	if (arr) {
		cli_print_json(stdout, arr);
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		snapshot_usage(stdout);
		return 0;
	}
	if (argc < 2)
		return cli_usage_error("snapshot", "takes NAME [TAG]");
	if (!strcmp(argv[1], "list") || !strcmp(argv[1], "rm")) {
		static const struct cli_spec gspec = { .cmd = "snapshot", .max_args = -1, .command_after = 1,
						       .group = true };
		struct cli_args ga;
		int gr = cli_parse(&gspec, argc, argv, NULL, NULL, &ga);
		if (gr)
			return gr;
		struct cli_spec spec = { .cmd = "snapshot", .max_args = -1 };
		struct cli_args a;
		/* The process ends with the command: ga and a need no release. */
		if ((gr = cli_parse(&spec, ga.argc, ga.argv, NULL, NULL, &a)))
			return gr;
		if (!strcmp(ga.argv[0], "list")) {
			if (a.argc != 1)
				return cli_usage_error("snapshot", "list takes NAME");
			return snapshot_list_cmd(a.argv[0]);
		}
		if (a.argc != 2)
			return cli_usage_error("snapshot", "rm takes NAME TAG");
		struct corral_error err = { 0 };
		if (snapshot_remove(a.argv[0], a.argv[1], &err) < 0)
			return cli_fail(&err);
		return 0;
	}
	static const struct cli_spec spec = { .cmd = "snapshot", .min_args = 1, .max_args = 2,
					      .missing = "takes NAME [TAG]" };
	struct cli_args a;
	int r = cli_parse(&spec, argc, argv, NULL, NULL, &a);
	if (r)
		return r;
	return snapshot_take(a.argv[0], a.argc == 2 ? a.argv[1] : NULL);
}

static void rollback_usage(FILE *out)
{
	fputs("usage: corral rollback NAME TAG [--restart]\n"
	      "\n"
	      "Makes container NAME's tree exactly snapshot TAG's (content, metadata,\n"
	      "deleted template files).  The container must be stopped; --restart stops a\n"
	      "running one, rolls it back and starts it again.  Metadata only: the time does\n"
	      "not grow with the amount of data.\n",
	      out);
}

int cmd_rollback(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		rollback_usage(stdout);
		return 0;
	}
	static const struct option opts[] = {
		{ "restart", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "rollback", .longopts = opts, .min_args = 2, .max_args = 2,
					      .missing = "takes NAME TAG" };
	bool restart = false;
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, cli_opt_flag, &restart, &a);
	if (pr)
		return pr;
	/* The process ends with the command: a needs no release. */
	const char *name = a.argv[0], *tag = a.argv[1];
	struct corral_error err = { 0 };
	struct container_state st;
	char root_name[256];
	if (snapshot_root_name(root_name, sizeof(root_name), name, tag, &err) < 0 || state_load(name, &st, &err) < 0)
		return cli_fail(&err);
	bool running = state_init_alive(&st) || state_cowfs_alive(&st);
	if (running && !restart) {
		err_plain(&err, EBUSY,
			  "container '%s' is running: stop it first, or use rollback --restart to stop it, "
			  "roll back and start it again",
			  name);
		return cli_fail(&err);
	}
	if (running && container_stop(name, 10, &err) < 0)
		return cli_fail(&err);
	struct snapshot_rollback_result res;
	int r = snapshot_rollback_stopped(name, tag, &res, &err);
	if (r < 0 && !running)
		return cli_fail(&err);
	if (running) {
		/* Started again whatever the rollback did: a failed rollback left
		 * the old tree whole. */
		struct corral_error serr = { 0 };
		struct start_options so = { .cowfs = cli_cowfs() };
		int code;
		if (container_start(name, &so, &code, &serr) < 0) {
			if (r < 0)
				cli_fail(&err);
			return cli_fail(&serr);
		}
		if (r < 0)
			return cli_fail(&err);
	}
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "container", json_object_new_string(name));
		json_object_object_add(o, "tag", json_object_new_string(tag));
		json_object_object_add(o, "entries", json_object_new_int64(res.entries));
		json_object_object_add(o, "restarted", json_object_new_boolean(running));
		cli_print_json(stdout, o);
	} else
		printf("rolled %s back to %s (%llu entries)%s\n", name, tag, (unsigned long long)res.entries,
		       running ? ", restarted" : "");
	return 0;
}

static void clone_usage(FILE *out)
{
	fputs("usage: corral clone SRC NEW [--snapshot TAG]\n"
	      "\n"
	      "Makes container NEW with SRC's configuration (its own name, hostname and\n"
	      "store root) and SRC's tree as of snapshot TAG, or of a snapshot taken now\n"
	      "(and removed again once NEW has its tree).  Every block is shared: the\n"
	      "clone costs metadata only.  NEW is created stopped.\n",
	      out);
}

/* The clone's /etc/hostname and /etc/hosts name it, not its source (the
 * snapshot brought the source's); the clone stands without them. */
static void clone_names(const struct container_config *c)
{
	struct corral_error err = { 0 };
	char upper[PATH_MAX], base[PATH_MAX];
	if (state_path(upper, sizeof(upper), c->name, "upper", &err) < 0 ||
	    template_rootfs(state_root(), c->template_name, base, sizeof(base), &err) < 0 ||
	    container_etc_write_names(upper, base, c, &err) < 0)
		fprintf(stderr, "corral: warning: %s keeps its source's /etc/hostname and /etc/hosts: %s\n", c->name,
			err.msg);
}

int cmd_clone(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		clone_usage(stdout);
		return 0;
	}
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "clone", .longopts = opts, .min_args = 2, .max_args = 2,
					      .missing = "takes SRC NEW" };
	const char *tag = NULL;
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, cli_opt_value, &tag, &a);
	if (pr)
		return pr;
	/* The process ends with the command: a needs no release. */
	const char *src = a.argv[0], *name = a.argv[1];
	struct corral_error err = { 0 };
	char cfg[PATH_MAX], root_name[256], tmp_tag[SNAPSHOT_TAG_MAX + 1];
	if (name_validate("container", name, &err) < 0 || state_path(cfg, sizeof(cfg), src, "config", &err) < 0)
		return cli_fail(&err);
	if (tag && snapshot_root_name(root_name, sizeof(root_name), src, tag, &err) < 0)
		return cli_fail(&err);
	struct container_config c;
	if (config_load(cfg, &c, &err) < 0)
		return cli_fail(&err);
	bool own_hostname = !strcmp(c.hostname, c.name);
	snprintf(c.name, sizeof(c.name), "%s", name);
	if (own_hostname || strlen(name) <= HOSTNAME_MAX_LEN)
		snprintf(c.hostname, sizeof(c.hostname), "%s", name);
	c.userns_range_given = false; /* a range of its own */
	int r = 0;
	if (!tag) {
		/* A snapshot for the purpose, removed once NEW's root names the
		 * recipes. */
		snprintf(tmp_tag, sizeof(tmp_tag), "clone-%ld-%d", (long)time(NULL), (int)getpid());
		struct snapshot_result res;
		r = snapshot_create(src, tmp_tag, &res, &err);
	}
	if (r == 0)
		r = cli_create_container(&c, 0, &err);
	bool created = r == 0;
	struct snapshot_rollback_result res;
	if (r == 0)
		r = snapshot_build_upper(src, tag ? tag : tmp_tag, name, &res, &err);
	if (r == 0)
		clone_names(&c);
	if (!tag) {
		struct corral_error rerr = { 0 };
		int t = snapshot_remove(src, tmp_tag, &rerr);
		if (t < 0 && r == 0) {
			err = rerr;
			r = t;
		}
	}
	config_release(&c);
	if (r < 0) {
		if (created) {
			char *rm_argv[] = { "rm", "-f", (char *)name, NULL };
			cmd_rm(3, rm_argv);
		}
		return cli_fail(&err);
	}
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "container", json_object_new_string(name));
		json_object_object_add(o, "source", json_object_new_string(src));
		json_object_object_add(o, "entries", json_object_new_int64(res.entries));
		cli_print_json(stdout, o);
	} else
		printf("cloned %s to %s (%llu entries)\n", src, name, (unsigned long long)res.entries);
	return 0;
}
