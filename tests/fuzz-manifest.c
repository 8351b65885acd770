/* Fuzz target for the parser of a snapshot's tree manifest
 * (launcher/snapshot/manifest.c): bad data must give an error, never a
 * crash, a hang or a leak, and whatever parses must encode back to the
 * same bytes.  Driven over mutated real manifests by tests/unit-manifest
 * under make check. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "snapshot/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	struct corral_error err = { 0 };
	if (manifest_parse(data, size, &m, &err) < 0) {
		if (!err.msg[0])
			abort(); /* every refusal says why */
		return 0;
	}
	void *again;
	size_t len;
	if (manifest_encode(&m, &again, &len, &err) < 0 || len != size || memcmp(again, data, size))
		abort();
	free(again);
	manifest_release(&m);
	return 0;
}
