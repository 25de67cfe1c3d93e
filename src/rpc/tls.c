/* tls.c - OpenSSL contexts (ALPN "h2", mutual TLS), per-connection SSL over
 * memory BIOs, and the peer certificate's subject. */
#include "rpc/rpc_int.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

const char *rpc_tls_last_error(void)
{
  /* One loop thread per process, so a static buffer is fine here. */
  static char buf[256];
  unsigned long e = ERR_get_error();
  if (!e)
    return "unknown tls error";
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
  (void)ssl;
  (void)arg;
  /* gRPC needs HTTP/2: select "h2" or refuse the handshake. */
  for (unsigned int i = 0; i < inlen;) {
    unsigned int l = in[i];
    if (i + 1 + l > inlen)
      break;
    if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX *rpc_tls_ctx_new(const struct rpc_tls_opts *o, int is_server, char *err, size_t errlen)
{
  SSL_CTX *ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
  const char *what = "";
  if (!ctx) {
    what = "creating the context";
    goto fail;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (o->cert && SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
    what = o->cert;
    goto fail;
  }
  if (o->key && SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1) {
    what = o->key;
    goto fail;
  }
  if (o->cert && o->key && SSL_CTX_check_private_key(ctx) != 1) {
    what = "key does not match the certificate";
    goto fail;
  }
  if (is_server) {
    if (!o->cert || !o->key) {
      snprintf(err, errlen, "a tls server needs a certificate and a key");
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (o->ca) {
      if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
        what = o->ca;
        goto fail;
      }
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca);
      if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
  } else {
    static const unsigned char alpn[] = "\x02h2";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (o->ca ? SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1
              : SSL_CTX_set_default_verify_paths(ctx) != 1) {
      what = o->ca ? o->ca : "system trust store";
      goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  return ctx;
fail:
  snprintf(err, errlen, "tls: '%s': %s", what, rpc_tls_last_error());
  if (ctx)
    SSL_CTX_free(ctx);
  return NULL;
}

int rpc_tls_setup(struct rpc_conn *c, SSL_CTX *ctx, const char *server_name)
{
  c->ssl = SSL_new(ctx);
  if (!c->ssl)
    return RPC_E_TLS;
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(c->rbio, -1); /* empty means "want more", not EOF */
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  if (c->is_server) {
    SSL_set_accept_state(c->ssl);
    return 0;
  }
  SSL_set_connect_state(c->ssl);
  if (server_name && *server_name) {
    unsigned char tmp[16];
    if (inet_pton(AF_INET, server_name, tmp) == 1 || inet_pton(AF_INET6, server_name, tmp) == 1) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), server_name);
    } else {
      SSL_set_tlsext_host_name(c->ssl, server_name);
      SSL_set1_host(c->ssl, server_name);
    }
  }
  return 0;
}

int rpc_tls_handshake(struct rpc_conn *c)
{
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &n);
    if (n != 2 || memcmp(p, "h2", 2) != 0) {
      rpc_conn_logf(c, "tls handshake failed peer=%s error=\"peer did not negotiate h2 (alpn)\"",
                    c->peer);
      return RPC_E_ALPN;
    }
    return 1;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  const char *why = rpc_tls_last_error();
  long vr = SSL_get_verify_result(c->ssl);
  if (vr != X509_V_OK)
    why = X509_verify_cert_error_string(vr);
  rpc_conn_logf(c, "tls handshake failed peer=%s error=\"%s\"", c->peer, why);
  return RPC_E_TLS;
}

char *rpc_tls_peer_subject(SSL *ssl)
{
  X509 *x = SSL_get1_peer_certificate(ssl);
  if (!x)
    return NULL;
  BIO *b = BIO_new(BIO_s_mem());
  /* RFC 2253 escaping, "," between RDNs, in the certificate's own order:
   * "-subj /CN=agent-1/O=drover" prints as "CN=agent-1,O=drover". */
  unsigned long flags =
      (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_FN_SN;
  X509_NAME_print_ex(b, X509_get_subject_name(x), 0, flags);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s = xstrndup(data, (size_t)n);
  BIO_free(b);
  X509_free(x);
  return s;
}
