/* corral-import: the part of `corral template import` that unpacks
 * archives (tar, OCI images).  A separate program so that corral itself
 * links neither libarchive nor what libarchive pulls in (xml2, ICU, ...),
 * which would cost every container start about 3 ms of loading.
 *
 *   corral-import ROOT NAME --tar FILE | --oci PATH
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "template.h"

int main(int argc, char **argv)
{
	struct corral_error err = { 0 };
	if (argc != 5 || (strcmp(argv[3], "--tar") && strcmp(argv[3], "--oci"))) {
		fprintf(stderr, "usage: corral-import ROOT NAME --tar FILE | --oci PATH\n"
				"(run by `corral template import`)\n");
		return 125;
	}
	int r = !strcmp(argv[3], "--tar") ? template_import_tar(argv[1], argv[2], argv[4], &err)
					  : template_import_oci(argv[1], argv[2], argv[4], &err);
	if (r < 0) {
		fprintf(stderr, "corral: %s\n", err.msg);
		return 1;
	}
	return 0;
}
