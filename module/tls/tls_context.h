// Internal: OpenSSL pieces both server adapters share (not installed).
#ifndef EVSSE_TLS_TLS_CONTEXT_H_
#define EVSSE_TLS_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include "evsse/status.h"
#include "evsse/tls.h"

struct bufferevent;
struct evbuffer;

namespace evsse::internal {

// NewServerContext builds an OpenSSL server context from `options`: the
// certificate chain and its key (checked against each other), the version
// range, ciphers and groups, ALPN "http/1.1", SSL_MODE_RELEASE_BUFFERS (an
// idle connection holds no read or write buffer), no compression or
// renegotiation, and, with client_ca_file, a required client certificate.
// An error names the option or file and gives OpenSSL's reason. The caller
// owns the context (SSL_CTX_free; every SSL made from it holds a reference).
Result<SSL_CTX*> NewServerContext(const TlsOptions& options);

// IsTls says whether `bev` is one of libevent's OpenSSL bufferevents.
bool IsTls(bufferevent* bev);

// AddAsOneChain drains `data` into `out` as a single buffer chain, framed as
// one HTTP/1.1 chunk when `chunked`. libevent's OpenSSL bufferevent makes one
// SSL_write, so one TLS record and one send, per chain of its output; a
// batch written as size line, data chains and CRLF would be several.
void AddAsOneChain(evbuffer* out, evbuffer* data, bool chunked);

// WriteTls is the TLS twin of the adapters' direct write: it drains `data`
// (framed as one chunk when `chunked`) to the OpenSSL bufferevent `bev`.
// When nothing is queued and the frame fits one write of the bufferevent
// (bufferevent_get_max_single_write, 16 KiB), it calls SSL_write itself, now,
// instead of arming write interest and waiting a loop turn (two epoll_ctl).
// Whatever SSL_write did not finish goes to the bufferevent's output as the
// same chain, which libevent retries with the same bytes, as OpenSSL
// requires. Returns false when bytes were left queued.
bool WriteTls(bufferevent* bev, evbuffer* data, bool chunked);

}  // namespace evsse::internal

#endif  // EVSSE_TLS_TLS_CONTEXT_H_
