/* corral store stats | gc | fsck [--repair]: the host's block store
 * (store/), kept under the state root as <root>/store (mode 0700). */
#include "config.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "container/state.h"
#include "store/store.h"

static void store_usage(FILE *out)
{
	fputs("usage: corral [--json] store stats\n"
	      "       corral [--json] store gc\n"
	      "       corral [--json] store fsck [--repair]\n"
	      "\n"
	      "The block store (<root>/store) keeps each distinct block once for every\n"
	      "container and snapshot on the host.\n"
	      "\n"
	      "stats   logical bytes, stored bytes, dedup ratio, blocks, recipes, packs, roots\n"
	      "gc      deletes what no root reaches (waits for writers to finish a commit)\n"
	      "fsck    checks every record, the index and every root; names what is damaged\n"
	      "        and which root's files it takes; exit status 1 if anything is wrong\n"
	      "        --repair  rebuilds the index from the valid records (salvaging a\n"
	      "                  damaged block that has another good copy) and reports\n"
	      "                  what could not be repaired\n",
	      out);
}

static int open_store(struct store **ret, struct corral_error *err)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/store", state_root()) >= (int)sizeof(dir))
		return err_plain(err, ENAMETOOLONG, "state root path too long");
	return store_open(dir, STORE_CREATE, ret, err);
}

static double ratio(uint64_t logical, uint64_t unique)
{
	return unique ? (double)logical / (double)unique : 0.0;
}

static int store_stats_cmd(void)
{
	struct corral_error err = { 0 };
	struct store *s;
	struct store_stats st;
	if (open_store(&s, &err) < 0)
		return cli_fail(&err);
	int r = store_stats(s, &st, &err);
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "logical_bytes", json_object_new_int64(st.logical_bytes));
		json_object_object_add(o, "unique_bytes", json_object_new_int64(st.unique_bytes));
		json_object_object_add(o, "stored_bytes", json_object_new_int64(st.stored_bytes));
		json_object_object_add(o, "dedup_ratio", json_object_new_double(ratio(st.logical_bytes, st.unique_bytes)));
		json_object_object_add(o, "blocks", json_object_new_int64(st.blocks));
		json_object_object_add(o, "recipes", json_object_new_int64(st.recipes));
		json_object_object_add(o, "packs", json_object_new_int64(st.packs));
		json_object_object_add(o, "roots", json_object_new_int64(st.roots));
		json_object_object_add(o, "index_bytes", json_object_new_int64(st.index_bytes));
		cli_print_json(stdout, o);
		return 0;
	}
	printf("logical bytes  %llu\n", (unsigned long long)st.logical_bytes);
	printf("unique bytes   %llu\n", (unsigned long long)st.unique_bytes);
	printf("stored bytes   %llu\n", (unsigned long long)st.stored_bytes);
	printf("dedup ratio    %.2f\n", ratio(st.logical_bytes, st.unique_bytes));
	printf("blocks         %llu\n", (unsigned long long)st.blocks);
	printf("recipes        %llu\n", (unsigned long long)st.recipes);
	printf("packs          %llu\n", (unsigned long long)st.packs);
	printf("roots          %llu\n", (unsigned long long)st.roots);
	printf("index bytes    %llu\n", (unsigned long long)st.index_bytes);
	return 0;
}

static int store_gc_cmd(void)
{
	struct corral_error err = { 0 };
	struct store *s;
	struct store_gc_result res;
	if (open_store(&s, &err) < 0)
		return cli_fail(&err);
	int r = store_gc(s, &res, &err);
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (cli_globals.json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "packs_before", json_object_new_int64(res.packs_before));
		json_object_object_add(o, "packs_after", json_object_new_int64(res.packs_after));
		json_object_object_add(o, "bytes_before", json_object_new_int64(res.bytes_before));
		json_object_object_add(o, "bytes_after", json_object_new_int64(res.bytes_after));
		json_object_object_add(o, "records_dropped", json_object_new_int64(res.records_dropped));
		json_object_object_add(o, "packs_busy", json_object_new_int64(res.packs_busy));
		cli_print_json(stdout, o);
		return 0;
	}
	printf("packs %llu -> %llu, bytes %llu -> %llu, %llu records dropped", (unsigned long long)res.packs_before,
	       (unsigned long long)res.packs_after, (unsigned long long)res.bytes_before,
	       (unsigned long long)res.bytes_after, (unsigned long long)res.records_dropped);
	if (res.packs_busy)
		printf(", %llu packs left to their writers", (unsigned long long)res.packs_busy);
	printf("\n");
	return 0;
}

struct findings {
	json_object *arr;	/* --json: collected */
};

static void print_finding(void *ctx, enum store_finding kind, const char *line)
{
	struct findings *f = ctx;
	const char *k = kind == STORE_FSCK_INFO ? "info" : kind == STORE_FSCK_ERROR ? "error" : "lost";
	if (f->arr) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "kind", json_object_new_string(k));
		json_object_object_add(o, "message", json_object_new_string(line));
		json_object_array_add(f->arr, o);
		return;
	}
	printf("%s: %s\n", k, line);
}

static int store_fsck_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct cli_spec spec = { .cmd = "store fsck", .longopts = opts };
	bool repair = false;
	struct cli_args a;
	int pr = cli_parse(&spec, argc, argv, cli_opt_flag, &repair, &a);
	if (pr)
		return pr;
	cli_args_release(&a);
	unsigned flags = repair ? STORE_FSCK_REPAIR : 0;
	struct corral_error err = { 0 };
	struct store *s;
	struct store_fsck_result res;
	struct findings f = { .arr = cli_globals.json ? json_object_new_array() : NULL };
	if (open_store(&s, &err) < 0) {
		json_object_put(f.arr);
		return cli_fail(&err);
	}
	int r = store_fsck(s, flags, print_finding, &f, &res, &err);
	store_close(s);
	if (r < 0) {
		json_object_put(f.arr);
		return cli_fail(&err);
	}
	/* After --repair, a damaged record left out of the index is no error
	 * any more (gc deletes it); what was lost stays lost. */
	bool clean = res.lost_files == 0 && res.bad_roots == 0 && res.index_errors == 0 &&
		     (res.repaired || res.bad_records == 0);
	if (f.arr) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "clean", json_object_new_boolean(clean));
		json_object_object_add(o, "repaired", json_object_new_boolean(res.repaired));
		json_object_object_add(o, "records", json_object_new_int64(res.records));
		json_object_object_add(o, "bad_records", json_object_new_int64(res.bad_records));
		json_object_object_add(o, "torn_bytes", json_object_new_int64(res.torn_bytes));
		json_object_object_add(o, "index_errors", json_object_new_int64(res.index_errors));
		json_object_object_add(o, "roots", json_object_new_int64(res.roots));
		json_object_object_add(o, "bad_roots", json_object_new_int64(res.bad_roots));
		json_object_object_add(o, "lost_files", json_object_new_int64(res.lost_files));
		json_object_object_add(o, "findings", f.arr);
		cli_print_json(stdout, o);
	} else {
		printf("%llu records, %llu damaged; %llu index errors; %llu roots, %llu damaged, %llu files lost%s\n",
		       (unsigned long long)res.records, (unsigned long long)res.bad_records,
		       (unsigned long long)res.index_errors, (unsigned long long)res.roots,
		       (unsigned long long)res.bad_roots, (unsigned long long)res.lost_files,
		       res.repaired ? " (after repair)" : "");
	}
	return clean ? 0 : 1;
}

int cmd_store(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		store_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 125 : 0;
	}
	static const struct cli_spec gspec = { .cmd = "store", .min_args = 1, .max_args = -1,
					       .missing = "expected a subcommand", .command_after = 1, .group = true };
	struct cli_args ga;
	int gr = cli_parse(&gspec, argc, argv, NULL, NULL, &ga);
	if (gr)
		return gr;
	/* The process ends with the command: ga needs no release. */
	argc = ga.argc + 1;
	argv = ga.argv - 1;
	if (!strcmp(argv[1], "fsck"))
		return store_fsck_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stats") || !strcmp(argv[1], "gc")) {
		struct cli_spec spec = { .cmd = !strcmp(argv[1], "gc") ? "store gc" : "store stats" };
		struct cli_args a;
		int r = cli_parse(&spec, argc - 1, argv + 1, NULL, NULL, &a);
		if (r)
			return r;
		cli_args_release(&a);
		return !strcmp(argv[1], "gc") ? store_gc_cmd() : store_stats_cmd();
	}
	return cli_usage_error("store", "unknown subcommand '%s'", argv[1]);
}
