/* md.c - metadata lists and their translation to and from nghttp2 headers
 * (base64 for "-bin" keys). */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void rpc_md_init(struct rpc_mdlist *l)
{
  memset(l, 0, sizeof(*l));
}

void rpc_md_release(struct rpc_mdlist *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].key);
    free(l->v[i].value);
  }
  free(l->v);
  memset(l, 0, sizeof(*l));
}

static void md_push(struct rpc_mdlist *l, char *key, char *value, size_t len)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = (struct rpc_md){key, value, len};
}

static char *dup_value(const void *value, size_t len)
{
  char *v = xmalloc(len + 1);
  if (len)
    memcpy(v, value, len);
  v[len] = 0;
  return v;
}

int rpc_md_add(struct rpc_mdlist *l, const char *key, const void *value, size_t len)
{
  size_t kl = strlen(key);
  char *k = xstrdup(key);
  for (size_t i = 0; i < kl; i++)
    k[i] = (char)tolower((unsigned char)k[i]);
  if (!rpc_md_key_ok(k, kl)) {
    free(k);
    return RPC_E_INVAL;
  }
  md_push(l, k, dup_value(value, len), len);
  return 0;
}

int rpc_md_adds(struct rpc_mdlist *l, const char *key, const char *value)
{
  return rpc_md_add(l, key, value, strlen(value));
}

const struct rpc_md *rpc_md_get(const struct rpc_mdlist *l, const char *key)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0)
      return &l->v[i];
  return NULL;
}

static int is_bin(const char *k, size_t kl)
{
  return kl > 4 && memcmp(k + kl - 4, "-bin", 4) == 0;
}

void rpc_md_add_wire(struct rpc_mdlist *l, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
  if (is_bin((const char *)k, kl)) {
    uint8_t *bin;
    size_t bl;
    if (rpc_b64_decode((const char *)v, vl, &bin, &bl) == 0) {
      char *val = dup_value(bin, bl);
      free(bin);
      md_push(l, xstrndup((const char *)k, kl), val, bl);
      return;
    }
  }
  md_push(l, xstrndup((const char *)k, kl), dup_value(v, vl), vl);
}

static void hdrs_push(struct rpc_hdrs *h, char *k, size_t kl, char *v, size_t vl)
{
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->nv = xrealloc(h->nv, h->cap * sizeof(*h->nv));
  }
  h->nv[h->n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, kl, vl, NGHTTP2_NV_FLAG_NONE};
}

void rpc_hdrs_add(struct rpc_hdrs *h, const char *k, const char *v)
{
  hdrs_push(h, (char *)k, strlen(k), (char *)v, strlen(v));
}

void rpc_hdrs_add_md(struct rpc_hdrs *h, const struct rpc_mdlist *l)
{
  for (size_t i = 0; i < l->n; i++) {
    const struct rpc_md *m = &l->v[i];
    size_t kl = strlen(m->key);
    if (is_bin(m->key, kl)) {
      size_t bl;
      char *b = rpc_b64_encode((const uint8_t *)m->value, m->value_len, &bl);
      h->keep = xrealloc(h->keep, (h->nkeep + 1) * sizeof(*h->keep));
      h->keep[h->nkeep++] = b;
      hdrs_push(h, m->key, kl, b, bl);
    } else {
      hdrs_push(h, m->key, kl, m->value, m->value_len);
    }
  }
}

void rpc_hdrs_release(struct rpc_hdrs *h)
{
  for (size_t i = 0; i < h->nkeep; i++)
    free(h->keep[i]);
  free(h->keep);
  free(h->nv);
  memset(h, 0, sizeof(*h));
}
