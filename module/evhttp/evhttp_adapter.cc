// The evhttp adapter: maps libevent 2.1's evhttp request, streaming and
// close callbacks onto evsse::Exchange. No SSE policy lives here.
//
// libevent 2.1.12 facts this file relies on (see shared/notes):
//  - On a peer EOF, evhttp detaches a request still being answered
//    (evhttp_request_get_connection() returns NULL in the close callback) and
//    frees the connection, not the request: we must end it ourselves. When
//    the server frees the connection, the request is still attached and
//    libevent frees it.
//  - A keep-alive connection outlives a finished stream, so the close
//    callback is unhooked before we forget the exchange.
//  - evhttp_set_timeout applies to streams too; a zero timeval turns it off
//    for one connection (NULL would restore the 50 s defaults).
//  - TLS (ServeTls): evhttp_set_bevcb's callback gets no socket; evhttp sets
//    it on the bufferevent afterwards, which an OpenSSL bufferevent made with
//    fd -1 in the accepting state supports. If the callback returns NULL,
//    evhttp makes a plain bufferevent itself.
#include "evsse/evhttp.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tls_context.h"

#include "stream_write.h"

// libevent's allocator, exported by libevent 2.1 for its own libraries
// (mm-internal.h), so that memory evhttp allocated is freed the way it was
// allocated, also under event_set_mem_functions.
extern "C" void event_mm_free_(void* p);

namespace evsse::evhttp {
namespace {

class EvhttpExchange final : public Exchange {
 public:
  explicit EvhttpExchange(evhttp_request* req)
      : req_(req), conn_(evhttp_request_get_connection(req)) {}

  Method method() const override {
    switch (evhttp_request_get_command(req_)) {
      case EVHTTP_REQ_GET:
        return Method::kGet;
      case EVHTTP_REQ_HEAD:
        return Method::kHead;
      case EVHTTP_REQ_POST:
        return Method::kPost;
      case EVHTTP_REQ_OPTIONS:
        return Method::kOptions;
      default:
        return Method::kOther;
    }
  }
  std::string_view method_name() const override {
    switch (evhttp_request_get_command(req_)) {
      case EVHTTP_REQ_GET:
        return "GET";
      case EVHTTP_REQ_HEAD:
        return "HEAD";
      case EVHTTP_REQ_POST:
        return "POST";
      case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
      case EVHTTP_REQ_PUT:
        return "PUT";
      case EVHTTP_REQ_DELETE:
        return "DELETE";
      case EVHTTP_REQ_PATCH:
        return "PATCH";
      default:
        return "OTHER";
    }
  }
  std::string_view path() const override {
    const evhttp_uri* u = evhttp_request_get_evhttp_uri(req_);
    const char* p = u ? evhttp_uri_get_path(u) : nullptr;
    return p ? p : "";
  }
  std::string_view query() const override {
    const evhttp_uri* u = evhttp_request_get_evhttp_uri(req_);
    const char* q = u ? evhttp_uri_get_query(u) : nullptr;
    return q ? q : "";
  }
  const char* header(const char* name) const override {
    return evhttp_find_header(evhttp_request_get_input_headers(req_), name);
  }
  std::string_view body() override {
    evbuffer* in = evhttp_request_get_input_buffer(req_);
    size_t n = evbuffer_get_length(in);
    if (n == 0) return {};
    return {reinterpret_cast<const char*>(evbuffer_pullup(in, -1)), n};
  }
  bool http10() const override { return req_->major == 1 && req_->minor == 0; }
  std::string peer() const override {
    char* addr = nullptr;
    ev_uint16_t port = 0;
    if (!conn_) return "";
    evhttp_connection_get_peer(conn_, &addr, &port);
    std::string a = addr ? addr : "";
    if (a.find(':') != std::string::npos) a = "[" + a + "]";
    return a + ":" + std::to_string(port);
  }
  int socket() const override {
    return conn_ ? bufferevent_getfd(evhttp_connection_get_bufferevent(conn_))
                 : -1;
  }

  void set_listener(ExchangeListener* listener) override {
    if (aborting_) return;  // Abort dropped the listener for good
    listener_ = listener;
    if (listener_ && !hooked_) {
      evhttp_connection_set_closecb(conn_, &EvhttpExchange::OnClose, this);
      hooked_ = true;
    } else if (!listener_) {
      Unhook();
    }
  }

  void AddHeader(const char* name, const char* value) override {
    evhttp_add_header(evhttp_request_get_output_headers(req_), name, value);
  }

  void Reply(int status, const char* reason, std::string_view body) override {
    Unhook();
    evbuffer* b = evbuffer_new();
    evbuffer_add(b, body.data(), body.size());
    evhttp_send_reply(req_, status, reason, b);
    evbuffer_free(b);
    delete this;
  }

  void Start(int status, const char* reason) override {
    evhttp_send_reply_start(req_, status, reason);
    timeval none{0, 0};
    evhttp_connection_set_timeout_tv(conn_, &none);
    DiscardInput();
    Trim();
  }
  void Write(evbuffer* data) override {
    bufferevent* bev = evhttp_connection_get_bufferevent(conn_);
    if (direct_ && internal::IsTls(bev)) {
      // Over TLS the direct write is an SSL_write, made only when nothing is
      // queued (see WriteTls): bytes left over go through the OpenSSL
      // bufferevent, which retries them and calls OnWritten once sent.
      internal::WriteTls(bev, data, req_->chunked);
      return;
    }
    if (!direct_) {
      // The first chunk sets evhttp's write callback to OnWritten for good.
      evhttp_send_reply_chunk_with_cb(req_, data, &EvhttpExchange::OnWritten,
                                      this);
      DiscardInput();
      direct_ = req_->type == EVHTTP_REQ_GET;
      return;
    }
    // Packed behind unsent bytes, else written now (stream_write.h).
    internal::WriteStream(bev, data, req_->chunked);
  }
  size_t queued() const override {
    return evbuffer_get_length(
        bufferevent_get_output(evhttp_connection_get_bufferevent(conn_)));
  }
  void End() override {
    Unhook();
    // A keep-alive connection reads its next request from the input: stop
    // discarding it (evhttp installs its own reader once the reply is out).
    SetReadCallback(&EvhttpExchange::Discard, nullptr);
    evhttp_send_reply_end(req_);
    delete this;
  }
  void Abort() override {
    // Freeing the connection here could pull it from under a libevent
    // callback still on the stack: do it from a fresh event. The close
    // callback stays hooked in case the peer goes first.
    aborting_ = true;
    abort_ = event_new(evhttp_connection_get_base(conn_), -1, 0,
                       &EvhttpExchange::OnAbort, this);
    event_active(abort_, EV_TIMEOUT, 0);
    if (!hooked_) {
      evhttp_connection_set_closecb(conn_, &EvhttpExchange::OnClose, this);
      hooked_ = true;
    }
  }

 private:
  ~EvhttpExchange() override {
    if (aborting_) event_free(abort_);
  }

  // Trim frees what a long stream no longer needs and libevent would keep
  // until the request is freed: the parsed URI, both header lists (the
  // reply head is already in the connection's output buffer) and the
  // request's own body buffers (a chunked reply writes straight to the
  // connection). That is 40% of an idle subscriber's memory. Only
  // "Connection" is kept: evhttp_send_done reads it from both lists to
  // decide on keep-alive. evhttp_request_free skips null members.
  // The strings evhttp copied while reading the request go too (128 bytes
  // of heap with malloc's overhead): the URI, the peer's address (the
  // connection keeps its own), the Host cache of evhttp_request_get_host
  // and the reason phrase, which only the reply head (already written)
  // uses. evhttp itself frees uri the same way when a request fails.
  void Trim() {
    FreeString(&req_->uri);
    FreeString(&req_->remote_host);
    FreeString(&req_->host_cache);
    FreeString(&req_->response_code_line);
    KeepOnlyConnection(evhttp_request_get_input_headers(req_));
    KeepOnlyConnection(evhttp_request_get_output_headers(req_));
    if (req_->uri_elems) {
      evhttp_uri_free(req_->uri_elems);
      req_->uri_elems = nullptr;
    }
    if (req_->input_buffer) {
      evbuffer_free(req_->input_buffer);
      req_->input_buffer = nullptr;
    }
    if (req_->output_buffer) {
      evbuffer_free(req_->output_buffer);
      req_->output_buffer = nullptr;
    }
  }
  // FreeString frees with libevent's own allocator (mm_free), which honours
  // event_set_mem_functions: evhttp allocated these strings with it.
  static void FreeString(char** s) {
    event_mm_free_(*s);
    *s = nullptr;
  }
  static void KeepOnlyConnection(evkeyvalq* headers) {
    const char* c = evhttp_find_header(headers, "Connection");
    std::string keep = c ? c : "";
    evhttp_clear_headers(headers);
    if (!keep.empty()) evhttp_add_header(headers, "Connection", keep.c_str());
  }

  // evhttp keeps reading while it answers (to see the peer close) and
  // keeps what it reads: a client sending after its GET would grow the
  // input buffer without bound. While it writes a reply, evhttp leaves the
  // bufferevent's read callback empty (evhttp_write_buffer sets it to NULL
  // each time); DiscardInput puts Discard there, which drains the input.
  // Unlike an evbuffer callback it costs no allocation. It holds no state,
  // so it may outlive this exchange when libevent frees the connection.
  void DiscardInput() { SetReadCallback(nullptr, &EvhttpExchange::Discard); }
  // SetReadCallback replaces the bufferevent's read callback `from` by `to`
  // and keeps evhttp's other callbacks and argument.
  void SetReadCallback(bufferevent_data_cb from, bufferevent_data_cb to) {
    bufferevent* bev = evhttp_connection_get_bufferevent(conn_);
    bufferevent_data_cb read = nullptr, write = nullptr;
    bufferevent_event_cb event = nullptr;
    void* arg = nullptr;
    bufferevent_getcb(bev, &read, &write, &event, &arg);
    if (read == from) bufferevent_setcb(bev, to, write, event, arg);
  }
  static void Discard(bufferevent* bev, void*) {
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
  }

  ExchangeListener* listener() const { return aborting_ ? nullptr : listener_; }

  void Unhook() {
    if (hooked_) evhttp_connection_set_closecb(conn_, nullptr, nullptr);
    hooked_ = false;
  }

  static void OnWritten(evhttp_connection*, void* arg) {
    auto* self = static_cast<EvhttpExchange*>(arg);
    if (ExchangeListener* l = self->listener()) l->OnDrained();
  }

  static void OnClose(evhttp_connection*, void* arg) {
    auto* self = static_cast<EvhttpExchange*>(arg);
    self->hooked_ = false;
    if (ExchangeListener* l = self->listener()) {
      self->listener_ = nullptr;
      l->OnClosed();
    }
    // Detached (peer EOF): the request is ours to free. Attached (server
    // freeing the connection): libevent frees it after we return.
    if (evhttp_request_get_connection(self->req_) == nullptr)
      evhttp_send_reply_end(self->req_);
    delete self;
  }

  static void OnAbort(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<EvhttpExchange*>(arg);
    self->Unhook();
    evhttp_connection* conn = self->conn_;
    delete self;
    evhttp_connection_free(conn);  // frees the attached request too
  }

  evhttp_request* req_;
  evhttp_connection* conn_;
  // Abort drops the listener and needs an event from then on: one slot
  // serves both, so the exchange fits a 48-byte malloc block (an idle
  // subscriber's memory, bench/README.md).
  union {
    ExchangeListener* listener_ = nullptr;  // until Abort
    event* abort_;                          // after Abort (aborting_)
  };
  bool aborting_ = false;
  bool hooked_ = false;
  bool direct_ = false;  // Write may write to the socket itself
};

// Each open stream keeps one; 40 bytes is glibc's 48-byte block.
static_assert(sizeof(void*) != 8 || sizeof(EvhttpExchange) <= 40,
              "EvhttpExchange outgrew its malloc block");

// TlsSlot: the context a server's new connections are made with (ServeTls
// swaps it; each connection's SSL holds its own reference).
struct TlsSlot {
  SSL_CTX* ctx = nullptr;
};

bufferevent* NewTlsBufferevent(event_base* base, void* arg) {
  SSL* ssl = SSL_new(static_cast<TlsSlot*>(arg)->ctx);
  // Out of memory: evhttp then makes a plain bufferevent, and the client's
  // TLS hello gets a 400 in plain text: nothing is sent unencrypted.
  if (!ssl) return nullptr;
  bufferevent* bev = bufferevent_openssl_socket_new(
      base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    SSL_free(ssl);
    return nullptr;
  }
  // A client that closes without close_notify (most do) is an end of file,
  // as on a plain connection, not an error.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

// Route: what evhttp calls for a mounted path. Its Handler goes with the
// Hub (OnGone clears it: the path then answers 503). A route lives until it
// is unmounted (Mounted); evhttp gives no notice when a server is freed, so
// a mount without a handle keeps its small record for the life of the
// process.
struct Route {
  Handler* handler = nullptr;  // loop thread
};

void OnRequest(evhttp_request* req, void* arg) {
  Handler* handler = static_cast<Route*>(arg)->handler;
  if (!handler) {  // the Hub is gone; the server was kept
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer* body = evbuffer_new();
    evbuffer_add(body, "no evsse hub\n", 13);
    evhttp_send_reply(req, 503, "Service Unavailable", body);
    evbuffer_free(body);
    return;
  }
  // The exchange frees itself when the response is finished or the
  // connection goes away.
  handler->Handle(new EvhttpExchange(req));
}

std::mutex routes_mu;
auto* routes = new std::unordered_map<Route*, std::shared_ptr<Route>>;

Route* NewRoute(Handler* handler) {
  auto route = std::make_shared<Route>();
  route->handler = handler;
  std::weak_ptr<Route> weak = route;
  handler->OnGone([weak] {
    if (std::shared_ptr<Route> r = weak.lock()) r->handler = nullptr;
  });
  std::lock_guard<std::mutex> lock(routes_mu);
  return routes->emplace(route.get(), route).first->first;
}

void DropRoute(Route* route) {
  std::lock_guard<std::mutex> lock(routes_mu);
  routes->erase(route);
}

// SetRoute registers `handler` at `path`, and returns the handle that takes
// it off again.
Mounted SetRoute(struct ::evhttp* http, const char* path, Handler* handler) {
  Route* route = NewRoute(handler);
  if (evhttp_set_cb(http, path, &OnRequest, route) != 0) {
    DropRoute(route);
    return FailedPreconditionError(std::string("path ") + path +
                                   " already has a callback");
  }
  return Mounted([http, p = std::string(path), route] {
    evhttp_del_cb(http, p.c_str());
    DropRoute(route);
  });
}

}  // namespace

Status ServeTls(struct ::evhttp* http, const TlsOptions& options) {
  if (!http) return InvalidArgumentError("null argument");
  Result<SSL_CTX*> ctx = internal::NewServerContext(options);
  if (!ctx.ok()) return ctx.status();
  // One slot per server, kept for the process (a few bytes; the context it
  // holds is freed by the next ServeTls on a server at the same address).
  static std::mutex mu;
  static auto* slots = new std::unordered_map<struct ::evhttp*, TlsSlot*>;
  std::unique_lock<std::mutex> lock(mu);
  TlsSlot*& slot = (*slots)[http];
  if (!slot) slot = new TlsSlot;
  SSL_CTX* old = slot->ctx;
  slot->ctx = *ctx;
  lock.unlock();
  if (old) SSL_CTX_free(old);  // open connections keep their reference
  evhttp_set_bevcb(http, &NewTlsBufferevent, slot);
  return Status::Ok();
}

Mounted Mount(struct ::evhttp* http, const char* path, Hub* hub,
              const StreamOptions& options) {
  if (!http || !path || !hub) return InvalidArgumentError("null argument");
  if (path[0] != '/') return InvalidArgumentError("path must start with '/'");
  auto handler = hub->AddStreamEndpoint(options);
  if (!handler.ok()) return handler.status();
  if (!options.cors_origins.empty()) {
    // evhttp answers OPTIONS itself (405) unless allowed; 2.1 has no getter,
    // so this is the library default plus OPTIONS.
    evhttp_set_allowed_methods(
        http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
  }
  return SetRoute(http, path, *handler);
}

Mounted MountPublish(struct ::evhttp* http, const char* path, Hub* hub,
                     const PublishOptions& options) {
  if (!http || !path || !hub) return InvalidArgumentError("null argument");
  if (path[0] != '/') return InvalidArgumentError("path must start with '/'");
  auto handler = hub->AddPublishEndpoint(options);
  if (!handler.ok()) return handler.status();
  return SetRoute(http, path, *handler);
}

}  // namespace evsse::evhttp
