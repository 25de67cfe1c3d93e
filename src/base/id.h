/* id.h - time-ordered identifiers (UUIDv7, RFC 9562). */
#ifndef DROVER_BASE_ID_H
#define DROVER_BASE_ID_H

#define ID_LEN 36 /* "0193c0c5-7f1e-7abc-8def-0123456789ab" */

/* Writes a new UUIDv7 into buf (ID_LEN + 1 bytes, NUL-terminated). IDs made
 * by one process are strictly increasing, even within one millisecond. */
void id_new(char buf[ID_LEN + 1]);
/* 1 when s is a well-formed id for a job file name: 1..128 characters of
 * [A-Za-z0-9._-], not starting with '.'. User-given ids need not be UUIDs. */
int id_valid(const char *s);

#endif
