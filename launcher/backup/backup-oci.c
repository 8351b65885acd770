/* backup_oci_layer: not built yet (see backup-oci.h). */
#include "config.h"

#include <errno.h>

#include "backup/backup-oci.h"

int backup_oci_layer(const char *name, const char *tag, int out_fd, struct backup_oci_result *ret,
		     struct corral_error *err)
{
	(void)out_fd;
	(void)ret;
	return err_plain(err, -ENOTSUP, "%s: snapshot %s: OCI layer export is not built yet", name, tag);
}
