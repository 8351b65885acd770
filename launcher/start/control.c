/* What changes a running container in place: pause/resume (the cgroup
 * freezer, as a snapshot's cut) and new limits (`corral update`). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "container/state.h"
#include "start.h"

static int open_running(const char *name, struct cgroup **ret, struct corral_error *err)
{
	struct container_state st;
	int r = state_load_running(name, &st, err);
	if (r < 0)
		return r;
	char inst[CORRAL_INSTANCE_NAME_MAX];
	return cgroup_open(state_instance_name(name, inst, sizeof(inst)), ret, err);
}

int container_pause(const char *name, bool paused, struct corral_error *err)
{
	struct cgroup *cg;
	bool now;
	int r = open_running(name, &cg, err);
	if (r < 0)
		return r;
	r = cgroup_frozen(cg, &now, err);
	if (r >= 0 && now == paused) {
		cgroup_free(cg);
		return err_plain(err, paused ? EALREADY : EINVAL, "container %s is %s", name,
				 paused ? "already paused" : "not paused");
	}
	if (r >= 0)
		r = cgroup_freeze(cg, paused, err);
	if (r < 0 && paused)
		cgroup_freeze(cg, false, NULL); /* never leave half a freeze */
	cgroup_free(cg);
	return r < 0 ? err_wrap(err, "%s container %s", paused ? "pause" : "resume", name) : 0;
}

void container_thaw_quietly(const char *name)
{
	struct cgroup *cg;
	char inst[CORRAL_INSTANCE_NAME_MAX];
	if (cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, NULL) < 0)
		return;
	cgroup_freeze(cg, false, NULL);
	cgroup_free(cg);
}

int container_update(const char *name, const struct container_config *c, const struct cgroup_limits *old,
		     bool *ret_applied, struct corral_error *err)
{
	char path[PATH_MAX];
	struct container_state st;
	struct cgroup *cg = NULL;
	int r = state_path(path, sizeof(path), name, "config", err);
	if (r < 0)
		return r;
	*ret_applied = false;
	r = config_validate(c, err);
	if (r < 0)
		return r;
	if (state_load(name, &st, NULL) == 0 && state_init_alive(&st)) {
		char inst[CORRAL_INSTANCE_NAME_MAX];
		r = cgroup_open(state_instance_name(name, inst, sizeof(inst)), &cg, err);
		if (r < 0)
			return r;
		r = cgroup_set_limits(cg, &c->limits, err);
		if (r < 0) {
			/* Some hierarchies may have taken the new values. */
			cgroup_set_limits(cg, old, NULL);
			cgroup_free(cg);
			return err_wrap(err, "apply the new limits to container %s", name);
		}
		*ret_applied = true;
	}
	r = config_save(c, path, err);
	if (r < 0 && cg)
		cgroup_set_limits(cg, old, NULL); /* the config is the truth: keep them equal */
	cgroup_free(cg);
	return r;
}
