// The OpenSSL server context both adapters use (evhttp through
// evhttp_set_bevcb, libevhtp through its own accept path), and the framing
// that keeps one batch in one TLS record.
#include "tls_context.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace evsse::internal {
namespace {

// OpenSslReason returns the newest error on OpenSSL's queue as text and
// empties the queue (a stale error would confuse a later SSL_get_error).
std::string OpenSslReason() {
  unsigned long e = 0, last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (last == 0) return "unknown OpenSSL error";
  const char* r = ERR_reason_error_string(last);
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return r ? std::string(r) + " (" + buf + ")" : std::string(buf);
}

Status Fail(const std::string& what, const std::string& reason) {
  return InvalidArgumentError("TLS: " + what + ": " + reason);
}

// Readable checks a file first: "No such file or directory" reads better
// than OpenSSL's wrapping of it.
Status Readable(const char* what, const std::string& path) {
  if (access(path.c_str(), R_OK) == 0) return Status::Ok();
  return Fail(std::string("cannot read ") + what + " \"" + path + "\"",
              std::strerror(errno));
}

int VersionOf(TlsVersion v) {
  return v == TlsVersion::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

// SelectAlpn accepts "http/1.1" when the client offers it; a client that
// offers only other protocols (h2) gets no ALPN answer rather than a failed
// handshake, and then speaks HTTP/1.1 or leaves.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11 - 1, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// OnInfo sets TCP_NODELAY once a connection's handshake is done. libevent's
// OpenSSL bufferevent makes one TLS record, one send, per buffer chain, and
// evhttp queues a response's head and body as separate chains: with Nagle's
// algorithm the body's record then waits for the ACK of the head's, which
// the client delays (40 ms on Linux). Plain connections write both at once.
void OnInfo(const SSL* ssl, int where, int) {
  if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
  int fd = SSL_get_fd(ssl);
  int one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Status Configure(SSL_CTX* ctx, const TlsOptions& o) {
  SSL_CTX_set_min_proto_version(ctx, VersionOf(o.min_version));
  SSL_CTX_set_max_proto_version(ctx, VersionOf(o.max_version));
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1)
    return Fail("ciphers \"" + o.ciphers + "\"", OpenSslReason());
  if (SSL_CTX_set1_groups_list(ctx, o.curves.c_str()) != 1)
    return Fail("curves \"" + o.curves + "\"", OpenSslReason());
  if (Status s = Readable("certificate file", o.certificate_file); !s.ok())
    return s;
  if (SSL_CTX_use_certificate_chain_file(ctx, o.certificate_file.c_str()) != 1)
    return Fail("certificate file \"" + o.certificate_file + "\"",
                OpenSslReason());
  if (Status s = Readable("key file", o.key_file); !s.ok()) return s;
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) !=
      1)
    return Fail("key file \"" + o.key_file + "\" (for certificate \"" +
                    o.certificate_file + "\")",
                OpenSslReason());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return Fail("key file \"" + o.key_file +
                    "\" does not match certificate \"" + o.certificate_file +
                    "\"",
                OpenSslReason());
  if (!o.client_ca_file.empty()) {
    const char* ca = o.client_ca_file.c_str();
    if (Status s = Readable("client CA file", o.client_ca_file); !s.ok())
      return s;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
    if (!names || SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return Fail("client CA file \"" + o.client_ca_file + "\"",
                  names ? OpenSslReason() : "no certificate in it");
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  // Resumed sessions must match this context (OpenSSL refuses to resume a
  // verified session without one).
  static const unsigned char kSessionContext[] = "evsse";
  SSL_CTX_set_session_id_context(ctx, kSessionContext,
                                 sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(ctx, &SelectAlpn, nullptr);
  SSL_CTX_set_info_callback(ctx, &OnInfo);
  return Status::Ok();
}

}  // namespace

Result<SSL_CTX*> NewServerContext(const TlsOptions& options) {
  if (Status s = Validate(options); !s.ok()) return s;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return InternalError("TLS: SSL_CTX_new: " + OpenSslReason());
  if (Status s = Configure(ctx, options); !s.ok()) {
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return s;
  }
  return ctx;
}

bool IsTls(bufferevent* bev) {
  return bev && bufferevent_openssl_get_ssl(bev) != nullptr;
}

void AddAsOneChain(evbuffer* out, evbuffer* data, bool chunked) {
  size_t n = evbuffer_get_length(data);
  if (n == 0) return;
  evbuffer* frame = evbuffer_new();
  evbuffer_iovec v;
  if (!frame || evbuffer_reserve_space(frame, n + 32, &v, 1) != 1) {
    // No memory for the copy: the bytes still go out, in several records.
    if (frame) evbuffer_free(frame);
    if (chunked) evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_add_buffer(out, data);
    if (chunked) evbuffer_add(out, "\r\n", 2);
    return;
  }
  char* p = static_cast<char*>(v.iov_base);
  size_t head =
      chunked ? static_cast<size_t>(std::snprintf(p, 32, "%zx\r\n", n)) : 0;
  evbuffer_copyout(data, p + head, n);
  if (chunked) std::memcpy(p + head + n, "\r\n", 2);
  v.iov_len = head + n + (chunked ? 2 : 0);
  evbuffer_commit_space(frame, &v, 1);
  evbuffer_drain(data, n);
  evbuffer_add_buffer(out, frame);
  evbuffer_free(frame);
}

bool WriteTls(bufferevent* bev, evbuffer* data, bool chunked) {
  evbuffer* out = bufferevent_get_output(bev);
  if (evbuffer_get_length(out) > 0) {
    AddAsOneChain(out, data, chunked);  // behind queued bytes, in order
    return false;
  }
  evbuffer* frame = evbuffer_new();
  if (!frame) {
    AddAsOneChain(out, data, chunked);
    return false;
  }
  AddAsOneChain(frame, data, chunked);
  size_t n = evbuffer_get_length(frame);
  ev_ssize_t max = bufferevent_get_max_single_write(bev);
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  // An empty output means libevent has no SSL_write to retry: each one it
  // made returned complete. A larger frame, or one behind a failed write,
  // goes the bufferevent's way.
  if (ssl && n > 0 && max > 0 && n <= static_cast<size_t>(max)) {
    unsigned char* p = evbuffer_pullup(frame, -1);
    ERR_clear_error();
    int r = SSL_write(ssl, p, static_cast<int>(n));
    if (r > 0) evbuffer_drain(frame, static_cast<size_t>(r));
    // r <= 0 (would block, or an error): the same bytes, queued, are what
    // libevent's next SSL_write sends, or fails on and reports.
    ERR_clear_error();
  }
  bool done = evbuffer_get_length(frame) == 0;
  if (!done) evbuffer_add_buffer(out, frame);
  evbuffer_free(frame);
  return done;
}

}  // namespace evsse::internal
