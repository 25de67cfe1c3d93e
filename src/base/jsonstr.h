/* jsonstr.h - JSON strings from any C string. */
#ifndef DROVER_BASE_JSONSTR_H
#define DROVER_BASE_JSONSTR_H

#include <jansson.h>

/* A new JSON string of s. json_string() refuses invalid UTF-8, and text drover
 * reports (a job's argv, an error quoting a child's bytes) may hold some: such
 * bytes become '?' rather than losing the field. Never NULL. */
json_t *jsonstr_new(const char *s);

#endif
