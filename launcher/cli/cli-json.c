/* The CLI's one JSON printer (see cli.h). */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>

#include "cli.h"

void cli_print_json(FILE *out, struct json_object *o)
{
	/* Paths are the most common strings: "/var/lib", never "\/var\/lib". */
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

struct json_object *cli_json_string(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static void print_value(FILE *out, struct json_object *v)
{
	if (!v) {
		fputs("-", out);
		return;
	}
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++) {
			if (i)
				fputc(' ', out);
			print_value(out, json_object_array_get_idx(v, i));
		}
		return;
	}
	fputs(json_object_get_string(v), out);
}

static void print_fields(FILE *out, const char *prefix, struct json_object *o)
{
	json_object_object_foreach(o, key, v) {
		if (v && json_object_is_type(v, json_type_object)) {
			char sub[256];
			snprintf(sub, sizeof(sub), "%s%s.", prefix, key);
			print_fields(out, sub, v);
			continue;
		}
		fprintf(out, "%s%s: ", prefix, key);
		print_value(out, v);
		fputc('\n', out);
	}
}

void cli_print_fields(FILE *out, struct json_object *o)
{
	print_fields(out, "", o);
	json_object_put(o);
}
