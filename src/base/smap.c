/* smap.c - string-keyed hash map: FNV-1a, chained buckets, doubling. */
#include "base/smap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct smap_entry {
  char *key;
  void *val;
  struct smap_entry *next;
};

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* The link that points (or would point) to key's entry. nbuckets > 0. */
static struct smap_entry **slot_of(const struct smap *m, const char *key)
{
  struct smap_entry **p = &m->buckets[hash_str(key) & (m->nbuckets - 1)];
  while (*p && strcmp((*p)->key, key))
    p = &(*p)->next;
  return p;
}

/* Doubling keeps the load factor at most 1, so a lookup walks one entry on
 * average; entries are relinked, not copied. */
static void grow(struct smap *m)
{
  size_t nb = m->nbuckets ? m->nbuckets * 2 : 64;
  struct smap_entry **b = xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      struct smap_entry **slot = &b[hash_str(e->key) & (nb - 1)];
      e->next = *slot;
      *slot = e;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

void smap_init(struct smap *m)
{
  memset(m, 0, sizeof(*m));
}

void smap_release(struct smap *m, void (*free_val)(void *))
{
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      if (free_val)
        free_val(e->val);
      free(e->key);
      free(e);
    }
  }
  free(m->buckets);
  memset(m, 0, sizeof(*m));
}

void *smap_get(const struct smap *m, const char *key)
{
  if (!m->nbuckets)
    return NULL;
  struct smap_entry *e = *slot_of(m, key);
  return e ? e->val : NULL;
}

void *smap_put(struct smap *m, const char *key, void *val)
{
  if (m->n + 1 > m->nbuckets)
    grow(m);
  struct smap_entry **slot = slot_of(m, key);
  if (*slot) {
    void *old = (*slot)->val;
    (*slot)->val = val;
    return old;
  }
  struct smap_entry *e = xmalloc(sizeof(*e));
  e->key = xstrdup(key);
  e->val = val;
  e->next = NULL;
  *slot = e;
  m->n++;
  return NULL;
}

void *smap_del(struct smap *m, const char *key)
{
  if (!m->nbuckets)
    return NULL;
  struct smap_entry **slot = slot_of(m, key), *e = *slot;
  if (!e)
    return NULL;
  void *val = e->val;
  *slot = e->next;
  free(e->key);
  free(e);
  m->n--;
  return val;
}

int smap_foreach(const struct smap *m, int (*fn)(const char *key, void *val, void *ud), void *ud)
{
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (struct smap_entry *e = m->buckets[i]; e; e = e->next) {
      int rc = fn(e->key, e->val, ud);
      if (rc)
        return rc;
    }
  }
  return 0;
}
