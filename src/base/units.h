/* units.h - durations and sizes, parsed in one place for flags, env, config
 * and job files. */
#ifndef DROVER_BASE_UNITS_H
#define DROVER_BASE_UNITS_H

#include <stdint.h>
#include <stddef.h>

/* Parses a duration: a non-negative integer or decimal followed by a unit,
 * "ms", "s", "m" or "h", and sums of them ("1h30m", "1.5s", "500ms").
 * A bare "0" is allowed. Result in milliseconds, truncated, except that a
 * positive duration below 1 ms gives 1: only a duration whose digits are
 * all 0 gives 0 (which means "no limit" to a timeout). Returns 0, or -1 when
 * the text is not a duration (nothing is written to *ms). */
int units_parse_duration(const char *s, uint64_t *ms);
/* Parses a size: an integer or decimal with an optional suffix K, M, G, T
 * (powers of 1024; "KB"/"KiB"/"k" accepted) or none for bytes. Returns 0 or -1. */
int units_parse_size(const char *s, uint64_t *bytes);
/* Formats ms as the shortest exact duration ("1h30m", "250ms", "0s"). */
void units_fmt_duration(char *buf, size_t len, uint64_t ms);
/* Formats bytes as "64K", "128M", "1.5G" (exact when possible). */
void units_fmt_size(char *buf, size_t len, uint64_t bytes);

#endif
