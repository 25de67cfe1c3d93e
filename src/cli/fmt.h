/* fmt.h - what the CLI shows people: aligned tables, relative times ("3s
 * ago"), durations ("1.5s"), and states in colour, but only on a terminal.
 * Scripts use --json; nothing here is meant to be parsed. */
#ifndef DROVER_CLI_FMT_H
#define DROVER_CLI_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* 1 when output to fd may be coloured: fd is a terminal, NO_COLOR is unset
 * or empty (no-color.org), and TERM is not "dumb". */
int fmt_color_ok(int fd);

/* SGR colour codes ("32") for a drover.v1.JobState / NodeState; NULL for
 * states shown plain. */
const char *fmt_job_state_color(int state);
const char *fmt_node_state_color(int state);

/* Writes text to f, wrapped in the SGR colour when color is set and on. */
void fmt_put_colored(FILE *f, const char *text, const char *color, int on);

/* "3s ago", "5m ago", "2h ago", "4d ago" for a wall-clock time in unix
 * microseconds, against now_us; "-" for 0; "just now" for a time up to a
 * second ahead (clocks of two machines). */
void fmt_ago(char *buf, size_t len, int64_t us, int64_t now_us);
/* "850us", "12ms", "1.5s", "42s", "3m20s", "2h5m", "3d4h": the two largest
 * units, rounded down. */
void fmt_duration(char *buf, size_t len, uint64_t us);
/* Bytes for people, rounded: "812 B", "3.4 KiB", "501 MiB", "23.5 GiB". */
void fmt_bytes(char *buf, size_t len, uint64_t bytes);

/* A table of text cells printed with aligned columns (widths in
 * characters, not bytes), two spaces apart, the last column unpadded. */
struct fmt_table;

/* A table with ncols columns and these headers (copied). */
struct fmt_table *fmt_table_new(size_t ncols, const char *const *headers);
/* Starts a row; cells are added left to right (missing ones print empty). */
void fmt_table_row(struct fmt_table *t);
/* Adds a cell (text copied; NULL prints "-"), coloured with SGR color when
 * the table is printed with colours on. */
void fmt_table_cell(struct fmt_table *t, const char *text, const char *color);
void fmt_table_cellf(struct fmt_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints headers and rows to f. */
void fmt_table_print(const struct fmt_table *t, FILE *f, int color);
void fmt_table_free(struct fmt_table *t);

#endif
