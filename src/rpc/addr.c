/* addr.c - parsing and printing of rpc addresses: "HOST:PORT", "[V6]:PORT",
 * "unix:PATH". */
#include "rpc/rpc_int.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <arpa/inet.h>

int rpc_addr_parse(const char *s, struct rpc_addr *a)
{
  memset(a, 0, sizeof(*a));
  if (strncmp(s, "unix:", 5) == 0) {
    const char *p = s + 5;
    /* grpc accepts "unix:///abs" too. */
    if (strncmp(p, "//", 2) == 0)
      p += 2;
    if (!*p || strlen(p) >= sizeof(a->path))
      return RPC_E_INVAL;
    a->is_unix = 1;
    strcpy(a->path, p);
    return 0;
  }
  const char *colon;
  const char *host = s;
  size_t hl;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':')
      return RPC_E_INVAL;
    host = s + 1;
    hl = (size_t)(end - host);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return RPC_E_INVAL;
    hl = (size_t)(colon - s);
  }
  const char *port = colon + 1;
  if (hl == 0 || hl >= sizeof(a->host) || !*port || strlen(port) >= sizeof(a->port))
    return RPC_E_INVAL;
  for (const char *q = port; *q; q++)
    if (*q < '0' || *q > '9')
      return RPC_E_INVAL;
  if (atoi(port) > 65535)
    return RPC_E_INVAL;
  memcpy(a->host, host, hl);
  strcpy(a->port, port);
  return 0;
}

void rpc_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    snprintf(buf, len, "unknown");
  }
}
