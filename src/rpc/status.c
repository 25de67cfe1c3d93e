/* status.c - status codes and names, error strings, header value codecs
 * (grpc-timeout, grpc-status, percent-encoded grpc-message, base64, keys). */
#include "rpc/wire.h"
#include "rpc/rpc.h"
#include "base/util.h"

#include <string.h>
#include <stdlib.h>
#include <uv.h>
#include <stdio.h>
#include <strings.h>

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_code_name(int code)
{
  if (code < 0 || code >= (int)ARRAY_SIZE(code_names))
    return "UNKNOWN";
  return code_names[code];
}

const char *rpc_strerror(int err)
{
  switch (err) {
  case 0:
    return "success";
  case RPC_E_INVAL:
    return "invalid argument";
  case RPC_E_STATE:
    return "call state does not allow this";
  case RPC_E_TOO_LARGE:
    return "message larger than the limit";
  case RPC_E_COMPRESSED:
    return "compressed message not supported";
  case RPC_E_FRAME:
    return "bad message framing";
  case RPC_E_PROTO:
    return "http/2 protocol error";
  case RPC_E_TLS:
    return "tls failure";
  case RPC_E_ALPN:
    return "tls peer did not negotiate h2";
  case RPC_E_CLOSED:
    return "connection closed";
  case RPC_E_PACK:
    return "message did not unpack";
  case RPC_E_TIMEOUT:
    return "timed out";
  case RPC_E_QUEUE_FULL:
    return "send queue full (the sender ignored backpressure)";
  default:
    break;
  }
  if (err < 0 && err > -4096)
    return uv_strerror(err);
  return "unknown error";
}

int rpc_timeout_parse(const char *s, size_t len, int64_t *ms)
{
  if (len < 2 || len > 9)
    return RPC_E_INVAL;
  int64_t v = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return RPC_E_INVAL;
    v = v * 10 + (s[i] - '0');
  }
  /* 8 digits at most, so no unit below can overflow int64. */
  switch (s[len - 1]) {
  case 'H':
    v *= 3600000;
    break;
  case 'M':
    v *= 60000;
    break;
  case 'S':
    v *= 1000;
    break;
  case 'm':
    break;
  case 'u':
    v = (v + 999) / 1000;
    break;
  case 'n':
    v = (v + 999999) / 1000000;
    break;
  default:
    return RPC_E_INVAL;
  }
  *ms = v;
  return 0;
}

void rpc_timeout_format(int64_t ms, char *buf, size_t len)
{
  if (ms < 0)
    ms = 0;
  /* At most 8 digits: pick the finest unit that fits. */
  if (ms < 100000000)
    snprintf(buf, len, "%lldm", (long long)ms);
  else if (ms / 1000 < 100000000)
    snprintf(buf, len, "%lldS", (long long)(ms / 1000));
  else if (ms / 60000 < 100000000)
    snprintf(buf, len, "%lldM", (long long)(ms / 60000));
  else
    snprintf(buf, len, "%lldH", (long long)(ms / 3600000 < 100000000 ? ms / 3600000 : 99999999));
}

int rpc_status_parse(const char *s, size_t len, int *code)
{
  if (len < 1 || len > 2)
    return RPC_E_INVAL;
  int v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return RPC_E_INVAL;
    v = v * 10 + (s[i] - '0');
  }
  *code = v;
  return 0;
}

char *rpc_pct_encode(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *out = xmalloc(n * 3 + 1), *o = out;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  *o = 0;
  return out;
}

char *rpc_pct_decode(const char *s, size_t len)
{
  char *out = xmalloc(len + 1), *o = out;
  for (size_t i = 0; i < len; i++) {
    int h, l;
    if (s[i] == '%' && i + 2 < len && (h = hex_value(s[i + 1])) >= 0 &&
        (l = hex_value(s[i + 2])) >= 0) {
      *o++ = (char)(h << 4 | l);
      i += 2;
    } else {
      *o++ = s[i];
    }
  }
  *o = 0;
  return out;
}

int rpc_http_to_code(int http_status)
{
  /* The mapping of gRPC's doc/http-grpc-status-mapping.md. */
  switch (http_status) {
  case 400:
    return RPC_INTERNAL;
  case 401:
    return RPC_UNAUTHENTICATED;
  case 403:
    return RPC_PERMISSION_DENIED;
  case 404:
    return RPC_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return RPC_UNAVAILABLE;
  default:
    return RPC_UNKNOWN;
  }
}

int rpc_content_type_ok(const char *s, size_t len)
{
  static const char ct[] = "application/grpc";
  size_t n = sizeof(ct) - 1;
  if (len < n || strncasecmp(s, ct, n) != 0)
    return 0;
  return len == n || s[n] == '+' || s[n] == ';';
}

int rpc_md_key_ok(const char *k, size_t len)
{
  if (len == 0)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = k[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *rpc_b64_encode(const uint8_t *p, size_t n, size_t *outlen)
{
  char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = b64[(v >> 6) & 63];
    *o++ = b64[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = b64[(v >> 6) & 63];
    *o++ = '=';
  }
  *o = 0;
  if (outlen)
    *outlen = (size_t)(o - out);
  return out;
}

static int b64val(char c)
{
  const char *p = c ? strchr(b64, c) : NULL;
  if (p)
    return (int)(p - b64);
  if (c == '-')
    return 62; /* url-safe alphabet too: some peers use it */
  if (c == '_')
    return 63;
  return -1;
}

int rpc_b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
  while (n > 0 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return RPC_E_INVAL;
  uint8_t *o = xmalloc(n / 4 * 3 + 3);
  size_t k = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64val(s[i]);
    if (v < 0) {
      free(o);
      return RPC_E_INVAL;
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (uint8_t)(acc >> bits);
    }
  }
  *out = o;
  *outlen = k;
  return 0;
}
