/* corral-export: writes a container's snapshot as an OCI image-spec layer
 * (an uncompressed tar) to its standard output.  The part of
 * backup_oci_layer() (backup-oci.h) that needs libarchive: a separate
 * program, as corral-import is, so that corral itself does not load
 * libarchive and what it pulls in (xml2, ICU, ...).
 *
 *   corral-export [--stats] ROOT NAME TAG >LAYER.tar
 *
 * ROOT is the state root (its store is ROOT/store).  On failure the
 * reason is one line on stderr and the exit status is the errno of the
 * failure (1..124; 1 when out of that range), which backup_oci_layer()
 * hands on.  --stats: on success, one line "entries=N bytes=N" on stderr. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup-oci-tar.h"
#include "container/state.h"
#include "snapshot/snapshot.h"

static int export_layer(const char *name, const char *tag, struct backup_oci_result *res, struct corral_error *err)
{
	char dir[PATH_MAX];
	int r = state_store_dir(dir, sizeof(dir), err);
	if (r < 0)
		return r;
	if (access(dir, F_OK) < 0)
		return err_plain(err, ENOENT, "container '%s' has no snapshot '%s' (no store in %s)", name, tag,
				 state_root());
	struct store *s;
	r = store_open(dir, 0, &s, err);
	if (r < 0)
		return r;
	struct manifest m = { 0 };
	r = snapshot_read_manifest(s, name, tag, &m, err);
	if (r == 0)
		r = backup_oci_tar_write(s, &m, STDOUT_FILENO, res, err);
	manifest_release(&m);
	store_close(s);
	return r < 0 ? err_wrap(err, "OCI layer of snapshot '%s' of '%s'", tag, name) : 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	bool stats = argc > 1 && !strcmp(argv[1], "--stats");
	if (stats)
		i++;
	if (argc - i != 3) {
		fprintf(stderr, "usage: corral-export [--stats] ROOT NAME TAG >LAYER.tar\n"
				"(run by `corral backup --format oci-layer`)\n");
		return 125;
	}
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "corral-export: refusing to write a tar to a terminal\n");
		return ENOTTY;
	}
	/* UTF-8 names then go into the pax records as UTF-8; other bytes are
	 * written as they are (hdrcharset=BINARY).  Either way the name's
	 * bytes are kept. */
	setlocale(LC_CTYPE, "C.UTF-8");
	state_set_root(argv[i]);
	struct corral_error err = { 0 };
	struct backup_oci_result res;
	int r = export_layer(argv[i + 1], argv[i + 2], &res, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", err.msg[0] ? err.msg : "unknown error");
		return -r > 0 && -r < 125 ? -r : 1;
	}
	if (stats)
		fprintf(stderr, "entries=%llu bytes=%llu\n", (unsigned long long)res.entries,
			(unsigned long long)res.bytes);
	return 0;
}
