/* smap.h - a string-keyed hash map: key (copied) -> void * (not owned). */
#ifndef DROVER_BASE_SMAP_H
#define DROVER_BASE_SMAP_H

#include <stddef.h>

struct smap_entry;

/* Embed it and zero it (smap_init, or `= {0}`): an empty map allocates
 * nothing. Keys are NUL-terminated strings copied on insertion; values are
 * the caller's. `n` is the number of entries and may be read directly. Not
 * thread-safe. */
struct smap {
  struct smap_entry **buckets;
  size_t nbuckets; /* 0 or a power of two */
  size_t n;
};

void smap_init(struct smap *m);
/* Frees the map's memory; free_val (may be NULL) is called on every value.
 * The map is empty (and usable) afterwards. */
void smap_release(struct smap *m, void (*free_val)(void *));

/* The value stored under key, or NULL when there is none. */
void *smap_get(const struct smap *m, const char *key);
/* Stores val under key (copied). Returns the value it replaced, or NULL; the
 * caller owns a replaced value. Never fails (allocation failure aborts). */
void *smap_put(struct smap *m, const char *key, void *val);
/* Removes key; returns its value (the caller owns it), or NULL when absent. */
void *smap_del(struct smap *m, const char *key);

/* Calls fn on every entry, in no particular order, until fn returns non-zero;
 * returns that value, or 0 when all entries were visited. fn must not add or
 * remove entries (replacing a value in place through smap_put is fine). */
int smap_foreach(const struct smap *m, int (*fn)(const char *key, void *val, void *ud), void *ud);

#endif
