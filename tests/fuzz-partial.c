/* Fuzz target for the parser of a partial file's record
 * (cowfs/cowfs-partial-record.c): bad data must give an error, never a
 * crash, a hang or a leak, and whatever parses must encode back to the
 * same bytes (a parsed record is one the encoder could have written).
 * Built with libFuzzer by `make fuzz-partial` (clang), and driven over
 * mutated real records by tests/unit-partial-record under make check. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cowfs/cowfs-partial-record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct partial_record r;
	if (partial_record_parse(data, size, &r) < 0)
		return 0;
	uint8_t again[PARTIAL_RECORD_MAX];
	int len = partial_record_encode(&r, again);
	if (len != (int)size || memcmp(again, data, size) != 0)
		abort();
	partial_record_release(&r);
	return 0;
}
