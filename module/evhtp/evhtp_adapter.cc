// The libevhtp adapter: maps libevhtp 1.2.18's request, streaming and hook
// API onto evsse::Exchange. No SSE policy lives here.
//
// libevhtp 1.2.18 bugs worked around (one test each, evhtp_adapter_test.cc):
//  1. evhtp_send_reply_chunk_start sends "Transfer-Encoding: chunked" to
//     HTTP/1.0 clients: a 1.0 stream uses evhtp_send_reply_start, raw body.
//  2. On 1.0, a response end never closes a connection whose output already
//     drained, and a 1.0 keep-alive request stays open after a body only a
//     close can end: 1.0 streams drop keep-alive and close once drained.
//  3. evhtp_set_cb matches prefixes ("/eventsXYZ" reaches "/events"): the
//     route compares the exact path, else 404.
//  4. A "Connection: close" header is sent, yet the connection is kept
//     alive: it becomes evhtp's keep-alive flag.
//  5. A form-encoded POST body becomes the query when the URL has none: an
//     empty query list, set once the headers are parsed, prevents it.
//  6. evhtp_hook_on_conn_error never fires, and connection hooks outlive the
//     request: closes are seen by the request's on_request_fini hook (run on
//     every path), which also unsets the on_write hook (our drain signal).
//  7. Only each header line is bounded (8 KiB), not their number: a client
//     could hold megabytes of headers for a stream's whole life. An evsse
//     route closes a request past kMaxHeaders headers or kMaxHeaderBytes.
//  8. Pipelined requests: the parser stops after one request, and its
//     "resume" of the rest is a no-op on a connection that is not paused
//     (it logs "ODDITY, resuming when not paused"), so the next request
//     waits for more bytes from the client; and a request parsed while the
//     one before still waits for its answer closes the connection. So a
//     publish whose answer is not immediate pauses the request (evhtp's
//     own mechanism: no parsing until it resumes after the reply), and
//     when a request an evsse route saw is freed with bytes left in the
//     input, ServePipelined runs the read callback again, deferred.
// TLS (ServeTls): evhtp makes an OpenSSL bufferevent for every connection
// it accepts while htp->ssl_ctx is set, and frees that context in
// evhtp_free; evhtp_ssl_init is not used (it would take its own settings,
// not TlsOptions).
// Also relied on: evhtp_connection_set_timeouts is bufferevent_set_timeouts,
// where NULL clears a timeout (evhttp's NULL restores defaults);
// evhtp_connection_free runs the fini hooks synchronously.
#include "evsse/evhtp.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <evhtp/evhtp.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>

#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "stream_write.h"
#include "tls_context.h"

namespace evsse::evhtp {
namespace {

// (7) Generous for browsers and proxies (evhttp users set their own limit
// with evhttp_set_max_headers_size).
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxHeaderBytes = 64 << 10;

template <typename F>
evhtp_hook AsHook(F* f) {
  return reinterpret_cast<evhtp_hook>(f);
}

// RestoreTimeouts applies the timeouts evhtp chose when it accepted `c`.
void RestoreTimeouts(evhtp_connection_t* c) {
  auto pick = [](const timeval& own, const timeval& server) {
    if (evutil_timerisset(&own)) return &own;
    return evutil_timerisset(&server) ? &server : nullptr;
  };
  evhtp_connection_set_timeouts(c, pick(c->recv_timeo, c->htp->recv_timeo),
                                pick(c->send_timeo, c->htp->send_timeo));
}

// ServePipelined: (8). Called from a request's fini hook: on a keep-alive
// reuse (before evhtp resets its parser), when the parser frees a finished
// request to start the next one, and in evhtp_connection_free. The read
// callback runs deferred, after evhtp is done with the connection; a
// deferred bufferevent callback holds a reference, and a freed
// bufferevent has no callback left to run.
void ServePipelined(evhtp_connection_t* c) {
  bufferevent* bev = c ? c->bev : nullptr;
  if (bev == nullptr || (c->flags & EVHTP_CONN_FLAG_PAUSED) ||
      evbuffer_get_length(bufferevent_get_input(bev)) == 0)
    return;
  bufferevent_trigger(bev, EV_READ,
                      BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

evhtp_res OnPlainFini(evhtp_request_t* req, void*) {
  ServePipelined(req->conn);
  return EVHTP_RES_OK;
}

class EvhtpExchange final : public Exchange {
 public:
  explicit EvhtpExchange(evhtp_request_t* req) : req_(req), conn_(req->conn) {
    evhtp_request_set_hook(req, evhtp_hook_on_request_fini, AsHook(&OnFini),
                           this);
  }

  Method method() const override {
    htp_method m = req_->method;
    return m == htp_method_GET       ? Method::kGet
           : m == htp_method_HEAD    ? Method::kHead
           : m == htp_method_POST    ? Method::kPost
           : m == htp_method_OPTIONS ? Method::kOptions
                                     : Method::kOther;
  }
  std::string_view method_name() const override {
    const char* m = htparser_get_methodstr_m(req_->method);
    return m ? m : "OTHER";
  }
  std::string_view path() const override { return req_->uri->path->full; }
  std::string_view query() const override {
    const unsigned char* q = req_->uri->query_raw;
    return q ? reinterpret_cast<const char*>(q) : "";
  }
  const char* header(const char* name) const override {
    return evhtp_header_find(req_->headers_in, name);
  }
  std::string_view body() override {
    size_t n = evbuffer_get_length(req_->buffer_in);
    if (n == 0) return {};
    return {reinterpret_cast<const char*>(evbuffer_pullup(req_->buffer_in, -1)),
            n};
  }
  bool http10() const override { return req_->proto != EVHTP_PROTO_11; }
  std::string peer() const override {
    char host[NI_MAXHOST], port[NI_MAXSERV];
    const sockaddr* sa = conn_->saddr;
    socklen_t len = sa && sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                    : sizeof(sockaddr_in);
    if (!sa || getnameinfo(sa, len, host, sizeof host, port, sizeof port,
                           NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      return "";
    std::string h = host;
    return (h.find(':') == std::string::npos ? h : "[" + h + "]") + ":" + port;
  }
  int socket() const override {
    return conn_->bev ? bufferevent_getfd(conn_->bev) : -1;
  }

  void set_listener(ExchangeListener* l) override { listener_ = l; }

  void AddHeader(const char* name, const char* value) override {
    if (strcasecmp(name, "Connection") == 0 &&
        strcasecmp(value, "close") == 0) {
      // (4) On 1.1, evhtp writes "Connection: close" itself once the flag
      // is off.
      evhtp_request_disable_flag(req_, EVHTP_REQ_FLAG_KEEPALIVE);
      if (req_->proto == EVHTP_PROTO_11) return;
    }
    evhtp_headers_add_header(req_->headers_out,
                             evhtp_header_new(name, value, 1, 1));
  }

  void Reply(int status, const char*, std::string_view body) override {
    listener_ = nullptr;
    answered_ = true;
    evbuffer_add(req_->buffer_out, body.data(), body.size());
    evhtp_send_reply(req_, status);
    if (paused_) Resume();
  }

  // HoldInput: (8) no request behind this one is parsed before its answer.
  void HoldInput() {
    if (answered_) return;
    paused_ = true;
    evhtp_request_pause(req_);
  }
  // Resume undoes HoldInput once the answer is queued. Not with
  // evhtp_request_resume: it unpauses at once but re-enables reading from a
  // later event, which also undoes a pause the next request takes in
  // between (and that request's successor then closes the connection).
  // This is what that event does when output is pending: evhtp's write
  // callback, once the answer is out, reads on (the WAITING flag).
  void Resume() {
    paused_ = false;
    req_->status = EVHTP_RES_OK;
    conn_->flags &= ~EVHTP_CONN_FLAG_PAUSED;
    conn_->flags |= EVHTP_CONN_FLAG_WAITING;
    bufferevent_enable(conn_->bev, EV_WRITE);
  }

  void Start(int status, const char*) override {
    answered_ = true;
    if (paused_) Resume();
    if (req_->proto == EVHTP_PROTO_11) {
      evhtp_send_reply_chunk_start(req_, status);
    } else {  // (1), (2)
      evhtp_request_disable_flag(req_, EVHTP_REQ_FLAG_KEEPALIVE);
      evhtp_headers_add_header(req_->headers_out,
                               evhtp_header_new("Connection", "close", 0, 0));
      evhtp_send_reply_start(req_, status);
    }
    evhtp_connection_set_timeouts(conn_, nullptr, nullptr);
    // (6) Ours until the request is freed.
    evhtp_connection_set_hook(conn_, evhtp_hook_on_write, AsHook(&OnWrite),
                              this);
    hooked_ = true;
  }
  void Write(evbuffer* data) override {
    bufferevent* bev = conn_->bev;
    if (internal::IsTls(bev)) {
      // Over TLS the direct write is an SSL_write (see WriteTls); what is
      // left goes through the OpenSSL bufferevent, whose write callback
      // (OnWrite) follows once it is sent.
      if (!(bufferevent_get_enabled(bev) & EV_WRITE))
        bufferevent_enable(bev, EV_WRITE);
      internal::WriteTls(bev, data, req_->flags & EVHTP_REQ_FLAG_CHUNKED);
      return;
    }
    // Packed behind unsent bytes, else written now (stream_write.h).
    internal::WriteStream(bev, data, req_->flags & EVHTP_REQ_FLAG_CHUNKED);
  }
  size_t queued() const override {
    return evbuffer_get_length(
        bufferevent_get_output(evhtp_connection_get_bev(conn_)));
  }
  void End() override {
    listener_ = nullptr;
    RestoreTimeouts(conn_);
    bufferevent_enable(conn_->bev, EV_WRITE);  // Write may have turned it off
    if (req_->flags & EVHTP_REQ_FLAG_CHUNKED) {
      evhtp_send_reply_chunk_end(req_);
      return;
    }
    // (2) Raw 1.0 body: evhtp's write callback closes the connection once
    // the output drains, but only if something is left to drain.
    evhtp_send_reply_end(req_);
    if (queued() == 0) CloseLater();
  }
  void Abort() override {
    listener_ = nullptr;
    CloseLater();
  }

 private:
  ~EvhtpExchange() override {
    if (close_) event_free(close_);
  }

  // CloseLater frees the connection from a fresh event: evhtp may still
  // have it on the stack.
  void CloseLater() {
    if (!close_) close_ = event_new(conn_->evbase, -1, 0, &OnCloseLater, this);
    event_active(close_, EV_TIMEOUT, 0);
  }

  static void OnCloseLater(evutil_socket_t, short, void* arg) {
    // Frees the request too: OnFini deletes the exchange (and this event).
    evhtp_connection_free(static_cast<EvhtpExchange*>(arg)->conn_);
  }

  static evhtp_res OnWrite(evhtp_connection_t*, void* arg) {
    auto* self = static_cast<EvhtpExchange*>(arg);
    if (self->listener_) self->listener_->OnDrained();
    return EVHTP_RES_OK;
  }

  static evhtp_res OnFini(evhtp_request_t*, void* arg) {
    auto* self = static_cast<EvhtpExchange*>(arg);
    if (ExchangeListener* l = self->listener_) {
      // Freed before Reply, End or Abort: the connection went away.
      self->listener_ = nullptr;
      l->OnClosed();
    }
    if (self->hooked_)
      evhtp_connection_unset_hook(self->conn_, evhtp_hook_on_write);
    ServePipelined(self->conn_);
    delete self;
    return EVHTP_RES_OK;
  }

  evhtp_request_t* req_;
  evhtp_connection_t* conn_;
  ExchangeListener* listener_ = nullptr;
  event* close_ = nullptr;
  bool hooked_ = false;
  bool answered_ = false;  // Reply or Start was called
  bool paused_ = false;    // HoldInput paused the request
};

using MakeEndpoint = std::function<Result<Handler*>(Hub*)>;

// Route: one mounted path and its endpoint per loop: the server's own loop
// (Mount), or each worker loop, made on first use by that loop's thread.
struct Route {
  std::string path;
  HubForLoop hub_for_loop;  // empty for Mount
  MakeEndpoint make;
  bool publish = false;  // hold the input while an answer is pending (8)
  std::mutex mu;
  std::unordered_map<event_base*, Handler*> by_base;
  bool unmounted = false;  // Mounted::Unmount: 404 from then on

  // Unmount: libevhtp 1.2.18 cannot take a callback off a server, so the
  // route stays registered and answers 404.
  void Unmount() {
    std::lock_guard<std::mutex> lock(mu);
    unmounted = true;
    by_base.clear();
  }
  bool live() {
    std::lock_guard<std::mutex> lock(mu);
    return !unmounted;
  }

  Handler* For(event_base* loop) {
    std::unique_lock<std::mutex> lock(mu);
    if (unmounted) return nullptr;
    if (auto it = by_base.find(loop); it != by_base.end()) return it->second;
    if (!hub_for_loop) return nullptr;  // Mount on a worker-thread server
    lock.unlock();
    Hub* hub = hub_for_loop(loop);
    Result<Handler*> h = hub ? make(hub) : UnavailableError("no hub");
    if (!h.ok()) return nullptr;
    Follow(loop, *h);
    lock.lock();
    return by_base.emplace(loop, *h).first->second;
  }

  // Follow: when `handler` goes with its Hub, this route stops using it
  // (the path answers 503 on that loop, or gets a new endpoint from
  // hub_for_loop).
  void Follow(event_base* loop, Handler* handler) {
    handler->OnGone([this, loop, handler] {
      std::lock_guard<std::mutex> lock(mu);
      auto it = by_base.find(loop);
      if (it != by_base.end() && it->second == handler) by_base.erase(it);
    });
  }
};

void ReplyText(evhtp_request_t* req, int status, const char* text) {
  evhtp_request_set_hook(req, evhtp_hook_on_request_fini, AsHook(&OnPlainFini),
                         nullptr);
  evhtp_headers_add_header(
      req->headers_out,
      evhtp_header_new("Content-Type", "text/plain; charset=utf-8", 0, 0));
  evbuffer_add(req->buffer_out, text, strlen(text));
  evhtp_send_reply(req, status);
}

void OnRequest(evhtp_request_t* req, void* arg) {
  auto* route = static_cast<Route*>(arg);
  if (route->path != req->uri->path->full || !route->live())  // (3)
    return ReplyText(req, EVHTP_RES_NOTFOUND, "not found\n");
  Handler* handler = route->For(req->conn->evbase);
  if (!handler)
    return ReplyText(req, EVHTP_RES_SERVUNAVAIL, "no evsse hub on this loop\n");
  auto* ex = new EvhtpExchange(req);
  handler->Handle(ex);  // frees nothing before the request's fini hook
  if (route->publish) ex->HoldInput();
}

evhtp_res OnHeaders(evhtp_request_t* req, evhtp_headers_t*, void*) {
  if (req->uri && !req->uri->query) req->uri->query = evhtp_query_new();  // (5)
  return EVHTP_RES_OK;
}

struct HeaderTally {
  size_t count = 0;
  size_t bytes = 0;
};

int AddToTally(evhtp_kv_t* kv, void* arg) {
  auto* t = static_cast<HeaderTally*>(arg);
  ++t->count;
  t->bytes += kv->klen + kv->vlen;
  return t->count > kMaxHeaders || t->bytes > kMaxHeaderBytes;
}

// OnHeader runs after each header is added to headers_in; the walk stops at
// the limits, so it costs at most kMaxHeaders steps per header.
evhtp_res OnHeader(evhtp_request_t* req, evhtp_header_t*, void*) {  // (7)
  HeaderTally t;
  evhtp_kvs_for_each(req->headers_in, &AddToTally, &t);
  return t.count > kMaxHeaders || t.bytes > kMaxHeaderBytes ? EVHTP_RES_ERROR
                                                            : EVHTP_RES_OK;
}

// AddRoute: `checked` is Validate of the endpoint's options (a worker
// mount makes its endpoints later, on each worker's Hub: its options are
// checked now all the same).
Mounted AddRoute(::evhtp_t* htp, const char* path, Hub* hub,
                 HubForLoop hub_for_loop, MakeEndpoint make, Status checked,
                 bool publish = false) {
  if (!htp || !path || (!hub && !hub_for_loop))
    return InvalidArgumentError("null argument");
  if (path[0] != '/') return InvalidArgumentError("path must start with '/'");
  if (evhtp_get_cb(htp, path))
    return FailedPreconditionError(std::string("path ") + path +
                                   " already has a callback");
  if (!checked.ok()) return checked;
  Result<Handler*> h = hub ? make(hub) : Result<Handler*>(nullptr);
  if (!h.ok()) return h.status();
  static std::mutex mu;  // routes are never freed: see evhtp.h
  static auto* routes = new std::deque<Route>;
  std::unique_lock<std::mutex> lock(mu);
  Route* route = &routes->emplace_back();
  lock.unlock();
  route->path = path;
  route->hub_for_loop = std::move(hub_for_loop);
  route->make = std::move(make);
  route->publish = publish;
  if (hub) {
    route->by_base.emplace(hub->base(), *h);
    route->Follow(hub->base(), *h);
  }
  evhtp_callback_t* cb = evhtp_set_cb(htp, path, &OnRequest, route);
  if (!cb) return InternalError("evhtp_set_cb failed");
  evhtp_callback_set_hook(cb, evhtp_hook_on_headers, AsHook(&OnHeaders),
                          nullptr);
  evhtp_callback_set_hook(cb, evhtp_hook_on_header, AsHook(&OnHeader), nullptr);
  return Mounted([route] { route->Unmount(); });
}

}  // namespace

Status ServeTls(::evhtp_t* htp, const TlsOptions& options) {
  if (!htp) return InvalidArgumentError("null argument");
  Result<SSL_CTX*> ctx = internal::NewServerContext(options);
  if (!ctx.ok()) return ctx.status();
  SSL_CTX* old = htp->ssl_ctx;
  htp->ssl_ctx = *ctx;         // evhtp_free frees it
  if (old) SSL_CTX_free(old);  // open connections keep their reference
  return Status::Ok();
}

Mounted Mount(::evhtp_t* htp, const char* path, Hub* hub,
              const StreamOptions& options) {
  return AddRoute(
      htp, path, hub, nullptr,
      [options](Hub* h) { return h->AddStreamEndpoint(options); },
      Validate(options));
}

Mounted MountPublish(::evhtp_t* htp, const char* path, Hub* hub,
                     const PublishOptions& options) {
  return AddRoute(
      htp, path, hub, nullptr,
      [options](Hub* h) { return h->AddPublishEndpoint(options); },
      Validate(options), true);
}

Mounted MountWorkers(::evhtp_t* htp, const char* path, HubForLoop hub_for_loop,
                     const StreamOptions& options) {
  return AddRoute(
      htp, path, nullptr, std::move(hub_for_loop),
      [options](Hub* h) { return h->AddStreamEndpoint(options); },
      Validate(options));
}

Mounted MountPublishWorkers(::evhtp_t* htp, const char* path,
                            HubForLoop hub_for_loop,
                            const PublishOptions& options) {
  return AddRoute(
      htp, path, nullptr, std::move(hub_for_loop),
      [options](Hub* h) { return h->AddPublishEndpoint(options); },
      Validate(options), true);
}

}  // namespace evsse::evhtp
