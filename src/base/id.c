/* id.c - UUIDv7 job ids and the rule for user-given ids. */
#include "base/id.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/util.h"

static void fill_random(void *buf, size_t n)
{
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got <= 0)
      continue; /* EINTR; getrandom cannot otherwise fail for small n */
    p += got;
    n -= (size_t)got;
  }
}

/* Ten random bytes per id, drawn from a pool refilled 25 ids at a time: a
 * coordinator making thousands of ids a second spends one getrandom(2) per
 * 25 of them, not one each. (Same process-wide, one-thread state as below.) */
static void take_random(uint8_t out[10])
{
  static uint8_t pool[250];
  static size_t used = sizeof(pool);
  if (used + 10 > sizeof(pool)) {
    fill_random(pool, sizeof(pool));
    used = 0;
  }
  memcpy(out, pool + used, 10);
  memset(pool + used, 0, 10); /* a byte is used once */
  used += 10;
}

void id_new(char buf[ID_LEN + 1])
{
  /* RFC 9562 method 1: a 12-bit counter in rand_a, seeded randomly each new
   * millisecond with headroom (top bit clear), makes ids from one process
   * strictly increasing. When the counter runs out, or the clock steps back,
   * the timestamp is carried forward instead: order wins over exact time.
   * Process-wide state is unavoidable for this guarantee. */
  static uint64_t last_ms;
  static uint16_t counter;
  uint64_t ms = (uint64_t)now_us() / 1000;
  uint8_t rnd[10], b[16];

  take_random(rnd);
  if (ms <= last_ms) {
    ms = last_ms;
    if (++counter > 0xfff) {
      ms++;
      counter = (uint16_t)(((rnd[8] << 8) | rnd[9]) & 0x7ff);
    }
  } else {
    counter = (uint16_t)(((rnd[8] << 8) | rnd[9]) & 0x7ff);
  }
  last_ms = ms;

  for (int i = 0; i < 6; i++)
    b[i] = (uint8_t)(ms >> (40 - 8 * i));
  b[6] = (uint8_t)(0x70 | (counter >> 8));
  b[7] = (uint8_t)(counter & 0xff);
  b[8] = (uint8_t)(0x80 | (rnd[0] & 0x3f));
  memcpy(b + 9, rnd + 1, 7);

  static const char hex[] = "0123456789abcdef";
  char *o = buf;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = '\0';
}

int id_valid(const char *s)
{
  size_t n = 0;

  if (!s || !*s || *s == '.')
    return 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (n >= 128)
      return 0;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}
