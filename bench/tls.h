// The load generator's client side of TLS: one SSL_CTX per run (verifying
// the server's chain and name) and non-blocking reads and writes with the
// semantics of recv/send, so that the epoll connections keep their loops.
//
// Thread safety: a TlsContext is used from the loop's thread only.
#ifndef EVSSE_BENCH_TLS_H_
#define EVSSE_BENCH_TLS_H_

#include <sys/types.h>

#include <string>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace evsse::bench {

class TlsContext {
 public:
  // Create builds the context: TLS 1.2 or later, peer verification against
  // `cacert` (a PEM file; empty: the system store), ALPN http/1.1, released
  // buffers on idle connections, partial writes. `name` is the name the
  // server's certificate must carry: an IPv4/IPv6 literal is checked
  // against the IP addresses of the certificate, anything else against its
  // DNS names (and is sent as SNI). nullptr with `error` on failure.
  static TlsContext* Create(const std::string& cacert, const std::string& name,
                            std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // NewSession returns a client SSL on `fd` (not yet connected), or nullptr.
  SSL* NewSession(int fd) const;

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string name_;
  bool name_is_ip_ = false;
};

// The outcome of a TLS step, with the semantics of recv/send: > 0 bytes,
// 0 the peer closed, -1 with errno: EAGAIN when the connection waits for
// the socket (*want_write says whether for writing), EPROTO for a TLS error
// (TlsLastError then says which), or the socket's own errno.
int TlsHandshake(SSL* ssl, bool* want_write);
ssize_t TlsRead(SSL* ssl, void* buf, size_t len, bool* want_write);
ssize_t TlsWrite(SSL* ssl, const void* buf, size_t len, bool* want_write);
// TlsLastError: the reason of the last EPROTO on this thread, with the
// certificate verification result when that is what failed.
std::string TlsLastError(SSL* ssl);
void TlsFree(SSL* ssl);

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_TLS_H_
