// The client's TLS (private to evsse::client): one OpenSSL context per
// Client, one SSL object per connection attempt, carried by a libevent
// OpenSSL bufferevent that evhttp then owns. OpenSSL stays out of the public
// headers: evsse/client.h only has the options (ca_file, ca_dir, insecure).
#ifndef EVSSE_CLIENT_CLIENT_TLS_H_
#define EVSSE_CLIENT_CLIENT_TLS_H_

#include <map>
#include <memory>
#include <string>

#include "evsse/client.h"
#include "evsse/status.h"

struct bufferevent;
struct event_base;

namespace evsse::internal {

// TlsVerifyRecord: what certificate verification refused during one
// attempt's handshake, written by OpenSSL's verify callback.
struct TlsVerifyRecord {
  std::string host;  // the name or address the certificate must match
  bool failed = false;
  std::string reason;  // OpenSSL's reason plus what the certificate said
};

class ClientTls {
 public:
  // Create builds the context: TLS 1.2 at least, ALPN http/1.1, peer
  // verification against options.ca_file / ca_dir when either is set, else
  // the system store; no verification when options.insecure. A CA file or
  // directory that cannot be loaded is kInvalidArgument naming it.
  static Result<std::unique_ptr<ClientTls>> Create(const ClientOptions& o);
  ~ClientTls();
  ClientTls(const ClientTls&) = delete;
  ClientTls& operator=(const ClientTls&) = delete;

  // NewBufferevent returns an OpenSSL bufferevent without a socket (evhttp
  // connects it), owning its SSL (BEV_OPT_CLOSE_ON_FREE), set up for
  // `record->host`: SNI unless it is an IP literal, and the DNS name or IP
  // address the certificate must carry. It offers to resume the session
  // last remembered under `server` (host:port). Verification failures go
  // to *record until Detach; record must outlive that. Null on failure.
  bufferevent* NewBufferevent(event_base* base, TlsVerifyRecord* record,
                              const std::string& server);

  // Remember keeps the session of `bev`, whose stream is open, for the
  // next connection to `server`: a reconnect then skips the full handshake
  // when the server still accepts it.
  void Remember(bufferevent* bev, const std::string& server);

  // Detach stops `bev` (from NewBufferevent) writing into its record.
  static void Detach(bufferevent* bev);

  // TakeErrors pops the OpenSSL errors `bev` collected (a failed handshake
  // or a broken record layer) as one line, "" when there were none.
  static std::string TakeErrors(bufferevent* bev);

 private:
  ClientTls() = default;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;  // the SSL_CTX and the remembered sessions
  bool insecure_ = false;
};

}  // namespace evsse::internal

#endif  // EVSSE_CLIENT_CLIENT_TLS_H_
