/* corral start --all-autostart: starts every container created with
 * --autostart that is not running, lowest autostart_order first, then by
 * name; what the shipped corral-autostart.service runs at boot (as
 * lxc-autostart).  One container failing does not stop the others; the
 * exit code says some failed. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "container/container-config.h"
#include "container/state.h"
#include "start/start.h"

struct entry {
	char *name;
	int order;
};

static int by_order(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

int cli_start_autostart(void)
{
	char **names;
	size_t count, n = 0;
	if (cli_container_names(&names, &count) < 0) {
		fprintf(stderr, "corral: cannot list the containers of %s\n", state_root());
		return 1;
	}
	struct entry *list = calloc(count ? count : 1, sizeof(*list));
	int rc = 0;
	for (size_t i = 0; list && i < count; i++) {
		struct corral_error err = { 0 };
		struct container_config c;
		struct container_state st;
		char path[PATH_MAX];
		if (state_path(path, sizeof(path), names[i], "config", &err) < 0 || config_load(path, &c, &err) < 0) {
			rc = cli_fail(&err);
			continue;
		}
		bool want = c.autostart;
		int order = c.autostart_order;
		config_release(&c);
		if (!want || (state_load(names[i], &st, NULL) == 0 && state_init_alive(&st)))
			continue;
		list[n++] = (struct entry){ names[i], order };
	}
	if (list)
		qsort(list, n, sizeof(*list), by_order);
	for (size_t i = 0; i < n; i++) {
		struct corral_error err = { 0 };
		struct start_options so = { .cowfs = cli_cowfs() };
		int code;
		if (container_start(list[i].name, &so, &code, &err) < 0)
			rc = cli_fail(&err);
		else
			printf("%s\n", list[i].name);
	}
	free(list);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	return rc;
}
