/* cgroup discovery: which hierarchies this host mounts (mountinfo), where
 * the launcher sits in each (/proc/self/cgroup), and which backend drives
 * which controller. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-internal.h"
#include "cleanup.h"

/* Undoes the octal escapes (\040) mountinfo uses for blanks in paths. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* Our controllers named in a comma-separated list ("rw,cpu,cpuacct"). */
static unsigned v1_mask(const char *list)
{
	unsigned mask = 0;

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		for (int c = 0; c < CG_NCTRL; c++)
			if (strlen(cg_v1_names[c]) == n && strncmp(p, cg_v1_names[c], n) == 0)
				mask |= CG_BIT(c);
		p += n;
		p += (*p == ',');
	}
	return mask;
}

struct cg_mount {
	bool v2;
	unsigned mask; /* v1: our controllers on this mount */
	char root[PATH_MAX], point[PATH_MAX];
};

/* Splits a mountinfo line; false for lines that are not cgroup mounts. */
static bool parse_mount(char *line, struct cg_mount *m)
{
	char *f[16], *save = NULL;
	int n = 0;

	for (char *t = strtok_r(line, " \n", &save); t && n < 16; t = strtok_r(NULL, " \n", &save))
		f[n++] = t;
	int sep = 6;
	while (sep < n && strcmp(f[sep], "-") != 0)
		sep++;
	if (sep + 3 >= n)
		return false;
	const char *fstype = f[sep + 1], *superopts = f[sep + 3];
	m->v2 = strcmp(fstype, "cgroup2") == 0;
	if (!m->v2 && strcmp(fstype, "cgroup") != 0)
		return false;
	m->mask = m->v2 ? 0 : v1_mask(superopts);
	if (!m->v2 && !m->mask)
		return false;
	unescape(f[3]);
	unescape(f[4]);
	snprintf(m->root, sizeof(m->root), "%s", f[3]);
	snprintf(m->point, sizeof(m->point), "%s", f[4]);
	return true;
}

/* Finds our line in /proc/self/cgroup for a hierarchy: v2 is "0::path",
 * a v1 hierarchy is the one whose controllers are exactly `mask` of ours. */
static bool own_path(const char *proc_cgroup, bool v2, unsigned mask, int *id, char *rel,
		     size_t size)
{
	for (const char *p = proc_cgroup; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char ctrls[256], path[PATH_MAX];
		int hid;
		if (sscanf(p, "%d:%255[^:\n]:%4095[^\n]", &hid, ctrls, path) != 3) {
			if (sscanf(p, "%d::%4095[^\n]", &hid, path) != 2)
				continue;
			ctrls[0] = '\0';
		}
		if (v2 ? (hid != 0 || ctrls[0]) : (hid == 0 || v1_mask(ctrls) != mask))
			continue;
		*id = hid;
		snprintf(rel, size, "%s", path);
		return true;
	}
	return false;
}

static int add_hier(struct cgroup *cg, const char *name, const struct cg_mount *m,
		    const char *proc_cgroup, struct corral_error *err)
{
	char rel[PATH_MAX];
	int id;

	if (!own_path(proc_cgroup, m->v2, m->mask, &id, rel, sizeof(rel)))
		return 0; /* mounted, but not a hierarchy we are in */
	for (int i = 0; i < cg->nhier; i++)
		if (cg->hier[i].id == id)
			return 0; /* the same hierarchy mounted twice */
	/* Paths in /proc/self/cgroup are relative to the hierarchy root;
	 * the mount may show only a subtree of it. */
	const char *sub = rel;
	size_t rlen = strlen(m->root);
	if (strcmp(m->root, "/") != 0) {
		if (strncmp(rel, m->root, rlen) != 0 || (rel[rlen] && rel[rlen] != '/'))
			return 0; /* a bind mount of some other subtree */
		sub = rel + rlen;
	}
	if (strcmp(sub, "/") == 0)
		sub = "";
	struct cg_hier *h = &cg->hier[cg->nhier];
	memset(h, 0, sizeof(*h));
	int n = snprintf(h->own, sizeof(h->own), "%s%s", m->point, sub);
	int k = snprintf(h->parent, sizeof(h->parent), "%s%s/" CG_PARENT, m->point, sub);
	int l = snprintf(h->leaf, sizeof(h->leaf), "%s%s/" CG_PARENT "/%s", m->point, sub, name);
	if (n >= (int)sizeof(h->own) || k >= (int)sizeof(h->parent) || l >= (int)sizeof(h->leaf))
		return err_plain(err, ENAMETOOLONG, "cgroup path below %s is too long", m->point);
	snprintf(h->rel, sizeof(h->rel), "%s", rel);
	snprintf(h->point, sizeof(h->point), "%s", m->point);
	h->id = id;
	h->be = m->v2 ? &cg_backend_v2 : &cg_backend_v1;
	h->ctrls = m->mask;
	cg->nhier++;
	return 0;
}

static int read_mounts(struct cg_mount **ret, int *ret_n, struct corral_error *err)
{
	cleanup_free char *text = NULL;
	int r = cg_read("/proc/self", "mountinfo", &text, err);
	if (r < 0)
		return r;
	cleanup_free struct cg_mount *m = calloc(CG_MAX_HIER * 2, sizeof(*m));
	if (!m)
		return err_set(err, ENOMEM, "read cgroup mounts");
	int n = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line && n < CG_MAX_HIER * 2;
	     line = strtok_r(NULL, "\n", &save))
		n += parse_mount(line, &m[n]);
	*ret = take_ptr(m);
	*ret_n = n;
	return 0;
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= sizeof(((struct cgroup *)0)->name) || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return false;
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == '\n' || (unsigned char)*p < 0x20)
			return false;
	return true;
}

int cg_discover(const char *name, struct cgroup *cg, struct corral_error *err)
{
	cleanup_free struct cg_mount *mounts = NULL;
	cleanup_free char *proc_cgroup = NULL;
	unsigned claimed = 0;
	int nmounts = 0, r;

	if (!valid_name(name))
		return err_plain(err, EINVAL, "invalid container name for a cgroup: \"%s\"", name);
	memset(cg, 0, sizeof(*cg));
	snprintf(cg->name, sizeof(cg->name), "%s", name);
	r = read_mounts(&mounts, &nmounts, err);
	if (r < 0)
		return r;
	r = cg_read("/proc/self", "cgroup", &proc_cgroup, err);
	if (r < 0)
		return r;
	/* v1 mounts first: a controller bound to v1 is absent from v2. */
	for (int i = 0; i < nmounts; i++) {
		if (mounts[i].v2 || (mounts[i].mask & claimed) || cg->nhier == CG_MAX_HIER)
			continue;
		int before = cg->nhier;
		r = add_hier(cg, name, &mounts[i], proc_cgroup, err);
		if (r < 0)
			return r;
		if (cg->nhier > before)
			claimed |= mounts[i].mask;
	}
	for (int i = 0; i < nmounts; i++) {
		if (!mounts[i].v2 || cg->nhier == CG_MAX_HIER)
			continue;
		int before = cg->nhier;
		r = add_hier(cg, name, &mounts[i], proc_cgroup, err);
		if (r < 0)
			return r;
		if (cg->nhier > before) {
			/* Candidates; prepare/open narrow them to what is enabled. */
			cg->hier[before].ctrls = (CG_V2_ENABLED | CG_V2_CORE) & ~claimed;
			break;
		}
	}
	if (cg->nhier == 0)
		return err_plain(err, ENOTSUP, "no cgroup hierarchy found in /proc/self/mountinfo");
	return 0;
}

const char *cgroup_host_mode(void)
{
	cleanup_free struct cg_mount *mounts = NULL;
	bool v1 = false, v2 = false;
	int n = 0;

	if (read_mounts(&mounts, &n, NULL) < 0)
		return "none";
	for (int i = 0; i < n; i++) {
		v1 |= !mounts[i].v2;
		v2 |= mounts[i].v2;
	}
	return v1 && v2 ? "hybrid" : v1 ? "v1" : v2 ? "v2" : "none";
}
