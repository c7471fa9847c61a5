// evsse::Client: a reconnecting EventSource client on libevent's evhttp
// client API, running on the caller's event_base, over http:// or https://
// (TLS through libevent's OpenSSL bufferevents; see ClientOptions::ca_file).
//
// It behaves like a browser EventSource (WHATWG HTML "server-sent events"):
// GET with `Accept: text/event-stream`, the body parsed by StreamParser as it
// arrives, `Last-Event-ID` sent on every reconnect, the server's `retry:`
// used as the reconnect delay, a 204 answer stops it for good, and any other
// non-200 status (or a 200 that is not text/event-stream) fails it for good
// unless ClientOptions::reconnect_on_http_error says otherwise (redirects
// are not followed: a 3xx is such a status). On top of
// that: exponential backoff with jitter on repeated failures, a connect
// timeout, an idle timeout (no byte for N ms = dead connection), custom
// request headers.
//
// Threads: everything belongs to the thread running `base` (the loop
// thread), including creation and destruction. Every callback runs on that
// thread, from the loop, never inside Start().
//
// Lifetime: the event_base must outlive the Client. Resources of an ended
// connection are released from the loop a moment later, so run the loop at
// least once more (e.g. EVLOOP_NONBLOCK) before freeing the base.
//
// Minimal use:
//
//   evsse::ClientOptions o;
//   o.url = "http://127.0.0.1:8080/events?topic=news";
//   auto client = evsse::Client::Create(base, o).value();
//   client->OnEvent([](const evsse::Client::Event& e) { use(e.data); });
//   client->Start().IgnoreError();
//   event_base_dispatch(base);
#ifndef EVSSE_CLIENT_H_
#define EVSSE_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "evsse/export.h"
#include "evsse/status.h"
#include "evsse/stream_parser.h"

struct event_base;
struct evdns_base;

namespace evsse {

// ClientOptions: one subscription. A plain aggregate; Client::Create
// validates it.
struct ClientOptions {
  // "http://host[:port]/path[?query]" or "https://..." (TLS, see ca_file);
  // no user info.
  std::string url;
  // Other URLs of the same stream, e.g. the same path on the other nodes
  // of a multi-node (Redis) deployment. When set, every reconnect goes to
  // the next URL in turn (url, fallback_urls[0], ..., then url again), with
  // the same Last-Event-ID, so a client of a node that died resumes on
  // another one. Each must be a valid `url` of the same scheme (an https
  // client never moves on to plain http).
  std::vector<std::string> fallback_urls;
  // Extra request headers ("Authorization", "Bearer ..."), sent on every
  // attempt. One with the name of a default header (Host, Accept,
  // Cache-Control) replaces it; Last-Event-ID is refused (use
  // last_event_id). Names must be HTTP tokens; values must not contain CR,
  // LF or NUL.
  std::vector<std::pair<std::string, std::string>> headers;
  // The id to resume from on the first connection (sent as Last-Event-ID);
  // later connections send the last id the stream gave. No CR, LF or NUL.
  std::string last_event_id;
  // Connecting (and the TLS handshake, for https) plus receiving the
  // response headers must take at most this long, or the attempt fails (and
  // is retried with backoff). 0 = no limit of ours (libevent still gives up
  // after an hour).
  std::chrono::milliseconds connect_timeout{10000};
  // An open stream that delivers no byte for this long is taken as dead and
  // reconnected. Set it above the server's heartbeat (e.g. 3 x 15 s).
  // 0 = off.
  std::chrono::milliseconds idle_timeout{0};
  // The reconnect delay until the server sends `retry:` (browsers: ~3 s).
  std::chrono::milliseconds initial_retry{3000};
  // Backoff after consecutive failures doubles the delay up to this cap
  // (never below the server's `retry:`).
  std::chrono::milliseconds max_backoff{30000};
  // A connection counts as a success (which resets the backoff) when it
  // delivered at least one event or stayed open this long. A server that
  // accepts and closes at once (load shedding) thus backs clients off.
  std::chrono::milliseconds stable_after{10000};
  // false (the default, like a browser): a non-200, non-204 status, a 200
  // that is not text/event-stream or a refused TLS certificate calls
  // on_error then on_close, and the client stays closed. true: it is reported
  // through on_error and retried with backoff (honouring a Retry-After header
  // in seconds).
  bool reconnect_on_http_error = false;
  // A server that vanished without closing (no FIN, no RST) is given up
  // once keepalive probes, sent after half of this without traffic, stay
  // unanswered for this long, or once the request stays unacknowledged
  // this long (TCP_USER_TIMEOUT); then the client reconnects. Unlike
  // idle_timeout it needs no heartbeat from the server. TCP_NODELAY is set
  // either way. 0 = the kernel's defaults.
  std::chrono::milliseconds dead_peer_timeout{45000};
  // Limits of the stream parser (see StreamParser::Limits): events of
  // several MiB pass by default. Past either the connection fails with
  // kResourceExhausted naming the option, and is retried with backoff.
  size_t max_line_bytes = 16 << 20;
  size_t max_data_bytes = 16 << 20;
  // TLS, for https:// URLs. The server's certificate must chain to a
  // trusted CA and name the URL's host (a DNS name; an IP literal must be
  // one of its IP addresses); SNI carries the host name (not for IP
  // literals); TLS 1.2 at least. Trusted CAs: the system's store
  // (OpenSSL's default paths), or, when ca_file or ca_dir is set, those
  // instead (like curl --cacert). A refused certificate fails the attempt
  // with kFailedPrecondition naming the host and OpenSSL's reason ("TLS
  // handshake with localhost:8443 failed: certificate verify failed:
  // certificate has expired (...)"), which, like an HTTP error, is fatal
  // unless reconnect_on_http_error; other TLS failures are kUnavailable
  // and retried. An https URL is never tried in plain text nor, unless
  // `insecure`, without verification. Reconnects offer to resume the TLS
  // session of the last stream from the same host and port. Files are read
  // by Create (a file that cannot be loaded is kInvalidArgument naming it).
  std::string ca_file;  // PEM file of trusted CA certificates
  std::string ca_dir;   // directory of hashed CA certificates (openssl rehash)
  // A client certificate for servers that ask for one (mutual TLS): PEM
  // files, the certificate (followed by its chain) and its private key;
  // both or neither. Read by Create (a bad file or a key that does not
  // match is kInvalidArgument naming it).
  std::string client_cert_file;
  std::string client_key_file;
  // insecure: no certificate verification at all. The stream is encrypted
  // but any server can pose as the host; for tests only.
  bool insecure = false;
  // How much of an error response's body is kept for the on_error message.
  size_t max_error_body_bytes = 512;
  // Resolver for host names (not owned; must outlive the Client). Null:
  // names are resolved with a blocking getaddrinfo; numeric addresses never
  // block.
  evdns_base* dns_base = nullptr;
};

class Client {
 public:
  // ReadyState mirrors EventSource.readyState.
  enum class ReadyState { kConnecting, kOpen, kClosed };

  using Event = StreamParser::Event;
  using EventCallback = std::function<void(const Event& event)>;
  using StatusCallback = std::function<void(const Status& status)>;

  // Create makes a stopped client on `base` (not owned). Fails with
  // kInvalidArgument on a bad URL, header or option.
  EVSSE_API static Result<std::unique_ptr<Client>> Create(
      event_base* base, ClientOptions options);

  // ~Client closes the connection. If on_close has not fired yet it fires
  // now with kCancelled "client destroyed": call Close() first when the
  // callbacks use objects that die before the Client. Destroying the
  // Client inside one of its own callbacks is allowed: the callbacks stop
  // at once and the remaining cleanup is deferred to the loop.
  EVSSE_API ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Callbacks. Set them before Start(); each setter replaces the previous
  // callback (an empty function removes it) and may also be called from
  // inside a callback. Inside any callback you may call Close(), the
  // accessors, the setters, and destroy the Client (see ~Client).
  //
  // OnOpen: a 200 text/event-stream response arrived (every connection,
  // including reconnects); ready_state() is kOpen.
  EVSSE_API void OnOpen(std::function<void()> cb);
  // OnEvent: every dispatched event, of every type, in stream order. The
  // Event is valid only during the call. After it, the handler registered
  // with On() for the event's type (if any) runs, unless the callback
  // closed the client.
  EVSSE_API void OnEvent(EventCallback cb);
  // On registers the handler for events of one type ("message" for events
  // without `event:`, "gap", ...), replacing the previous one for it.
  EVSSE_API void On(std::string type, EventCallback cb);
  // OnError: a connection attempt or stream failed: connect error or
  // timeout, idle timeout, stream ended or broken, HTTP error (code by
  // status: 401 kUnauthenticated, 403 kPermissionDenied, 404/410 kNotFound,
  // 429 kResourceExhausted, 5xx kUnavailable, others kFailedPrecondition;
  // message "HTTP 403 Forbidden: <start of the body>"), wrong Content-Type
  // (kFailedPrecondition), certificate refused (kFailedPrecondition), parser
  // limit (kResourceExhausted). Network and other TLS failures are
  // kUnavailable. When ready_state() is kConnecting inside
  // the callback a reconnect is scheduled (next_delay() says when); when it
  // is kClosed, on_close follows with the same status.
  EVSSE_API void OnError(StatusCallback cb);
  // OnClose: fires exactly once, when the client stops for good: Close()
  // or destruction (kCancelled), a 204 answer (an OK status with message
  // "stopped by server"), or a fatal error (the on_error status).
  EVSSE_API void OnClose(StatusCallback cb);

  // Start begins connecting (from the loop, not inside this call). Fails
  // with kFailedPrecondition when already started or closed.
  EVSSE_API Status Start();

  // Close stops the client: the connection is dropped, no reconnect
  // follows and on_close fires (now, unless it already did). Idempotent;
  // allowed inside any callback.
  EVSSE_API void Close();

  // ready_state is kConnecting from creation until the first open, like a
  // new EventSource.
  EVSSE_API ReadyState ready_state() const;
  // last_event_id is what the next connection sends as Last-Event-ID.
  EVSSE_API const std::string& last_event_id() const;
  // retry is the last `retry:` the server sent, if any.
  EVSSE_API std::optional<uint64_t> retry() const;
  // next_delay is the delay chosen for the pending (or last) reconnect.
  EVSSE_API std::chrono::milliseconds next_delay() const;
  // http_status is the status of the last response (0 before any).
  EVSSE_API int http_status() const;
  // attempts counts connection attempts started so far.
  EVSSE_API uint64_t attempts() const;
  // url is the URL of the current (or last) attempt: options.url or one of
  // options.fallback_urls.
  EVSSE_API const std::string& url() const;

 private:
  Client() = default;
  struct Impl;
  Impl* impl_ = nullptr;  // owned; may outlive us when destroyed in a callback
};

}  // namespace evsse

#endif  // EVSSE_CLIENT_H_
