#include "tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>

namespace evsse::bench {
namespace {

std::string ErrorQueue() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// Result maps SSL_get_error to the recv/send conventions of tls.h.
ssize_t Result(SSL* ssl, int r, bool* want_write) {
  *want_write = false;
  if (r > 0) return r;
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      *want_write = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      // An EOF without close_notify, or the socket's own error.
      if (ERR_peek_error() == 0) {
        if (errno == 0) return 0;
        return -1;
      }
      errno = EPROTO;
      return -1;
    default:
      errno = EPROTO;
      return -1;
  }
}

}  // namespace

TlsContext* TlsContext::Create(const std::string& cacert,
                               const std::string& name, std::string* error) {
  TlsContext* t = new TlsContext();
  t->name_ = name;
  in6_addr scratch;
  t->name_is_ip_ = inet_pton(AF_INET, name.c_str(), &scratch) == 1 ||
                   inet_pton(AF_INET6, name.c_str(), &scratch) == 1;
  SSL_CTX* ctx = t->ctx_ = SSL_CTX_new(TLS_client_method());
  auto fail = [&](const std::string& what) {
    *error = what + ": " + ErrorQueue();
    delete t;
    return nullptr;
  };
  if (ctx == nullptr) return fail("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (cacert.empty()
          ? SSL_CTX_set_default_verify_paths(ctx) != 1
          : SSL_CTX_load_verify_locations(ctx, cacert.c_str(), nullptr) != 1)
    return fail(cacert.empty() ? "the system certificate store"
                               : "--cacert " + cacert);
  // Idle subscribers hold no record buffers; writes behave like send(2);
  // the publisher's buffer may grow (move) between a short write's retries.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
                            SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read whole socket contents at once: fewer read(2) calls per event.
  SSL_CTX_set_read_ahead(ctx, 1);
  static const unsigned char kAlpn[] = {8,   'h', 't', 't', 'p',
                                        '/', '1', '.', '1'};
  if (SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn) != 0)
    return fail("ALPN");
  return t;
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL* TlsContext::NewSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  bool ok = SSL_set_fd(ssl, fd) == 1;
  if (ok && name_is_ip_) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name_.c_str()) == 1;
  } else if (ok) {
    ok = SSL_set1_host(ssl, name_.c_str()) == 1 &&
         SSL_set_tlsext_host_name(ssl, name_.c_str()) == 1;
  }
  if (!ok) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

int TlsHandshake(SSL* ssl, bool* want_write) {
  ERR_clear_error();
  errno = 0;
  ssize_t r = Result(ssl, SSL_connect(ssl), want_write);
  // A close during the handshake is a failed handshake.
  if (r == 0) errno = ECONNRESET;
  return r > 0 ? 1 : -1;
}

ssize_t TlsRead(SSL* ssl, void* buf, size_t len, bool* want_write) {
  ERR_clear_error();
  errno = 0;
  return Result(ssl, SSL_read(ssl, buf, static_cast<int>(len)), want_write);
}

ssize_t TlsWrite(SSL* ssl, const void* buf, size_t len, bool* want_write) {
  ERR_clear_error();
  errno = 0;
  ssize_t r =
      Result(ssl, SSL_write(ssl, buf, static_cast<int>(len)), want_write);
  if (r == 0) {
    errno = EPIPE;
    return -1;
  }
  return r;
}

std::string TlsLastError(SSL* ssl) {
  long v = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
  std::string out = ErrorQueue();
  if (v != X509_V_OK)
    out = std::string("certificate verification failed: ") +
          X509_verify_cert_error_string(v) + " (" + out + ")";
  return out;
}

void TlsFree(SSL* ssl) {
  if (ssl != nullptr) SSL_free(ssl);
}

}  // namespace evsse::bench
