/* store-tool: a small driver of store/ for the shell tests and benches.
 *
 *   store-tool DIR put ROOT FILE...   store the files, commit them as ROOT
 *                                     (labels: the paths as given)
 *   store-tool DIR cat ROOT LABEL     write that file's content to stdout
 *   store-tool DIR rmroot ROOT        remove a root
 *   store-tool DIR where ROOT LABEL N print "PACKFILE OFFSET" of block N's
 *                                     payload (to damage it on purpose)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store-internal.h"

static int fail(const struct corral_error *err)
{
	fprintf(stderr, "store-tool: %s\n", err->msg);
	return 1;
}

static int find_label(struct store *s, const char *root, const char *label, struct store_key *ret,
		      struct corral_error *err)
{
	struct store_root rt;
	if (store_root_read(s, root, &rt, err) < 0)
		return -1;
	int r = -1;
	for (size_t i = 0; i < rt.n; i++)
		if (!strcmp(rt.e[i].label, label)) {
			*ret = rt.e[i].recipe;
			r = 0;
		}
	store_root_release(&rt);
	if (r < 0)
		err_plain(err, ENOENT, "no file %s in root %s", label, root);
	return r;
}

int main(int argc, char **argv)
{
	struct corral_error err = { 0 };
	struct store *s;
	if (argc < 4) {
		fprintf(stderr, "usage: store-tool DIR put|cat|rmroot|where ARGS...\n");
		return 125;
	}
	if (store_open(argv[1], STORE_CREATE, &s, &err) < 0)
		return fail(&err);
	const char *cmd = argv[2], *root = argv[3];
	int r = 0;
	if (!strcmp(cmd, "put")) {
		struct store_root rt = { .n = argc - 4, .e = calloc(argc, sizeof(struct store_root_entry)) };
		r = store_begin(s, &err);
		for (int i = 4; r == 0 && i < argc; i++) {
			int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				r = err_set(&err, errno, "open %s", argv[i]);
				break;
			}
			r = store_put_fd(s, fd, &rt.e[i - 4].recipe, NULL, &err);
			rt.e[i - 4].label = argv[i];
			close(fd);
		}
		if (r == 0)
			r = store_root_commit(s, root, &rt, &err);
		store_end(s);
		free(rt.e);
	} else if (!strcmp(cmd, "cat") && argc == 5) {
		struct store_key k;
		r = find_label(s, root, argv[4], &k, &err);
		if (r == 0)
			r = store_read_to_fd(s, &k, 1, &err);
	} else if (!strcmp(cmd, "rmroot")) {
		r = store_root_remove(s, root, &err);
	} else if (!strcmp(cmd, "where") && argc == 6) {
		struct store_key k;
		struct store_recipe rcp;
		r = find_label(s, root, argv[4], &k, &err);
		if (r == 0)
			r = store_get_recipe(s, &k, &rcp, &err);
		size_t n = strtoul(argv[5], NULL, 10);
		if (r == 0 && n >= rcp.n)
			r = err_plain(&err, EINVAL, "the file has %zu blocks", rcp.n);
		struct store_loc loc;
		if (r == 0) {
			store_index_lock(s, false);
			r = store_index_find(s, STORE_KIND_BLOCK, &rcp.e[n].key, STORE_FIND_VERIFY, &loc, NULL);
			store_index_unlock(s);
			if (r < 0)
				err_plain(&err, ENOENT, "block not in the index");
		}
		if (r == 0)
			printf("%s/packs/%08x.pack %llu\n", argv[1], loc.pack,
			       (unsigned long long)(loc.off + STORE_REC_HDR));
	} else {
		fprintf(stderr, "store-tool: bad command\n");
		store_close(s);
		return 125;
	}
	store_close(s);
	return r < 0 ? fail(&err) : 0;
}
