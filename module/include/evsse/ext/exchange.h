// Extension seam (for adapter writers, not for applications): the seam
// between evsse's core and an HTTP library: one request and its
// response. An adapter (evhttp.h, later evhtp.h) implements Exchange for its
// library and hands each request to a Handler; the core decides every status,
// header and byte. Adding an HTTP library means one new Exchange, nothing
// else.
//
// Everything here runs on the loop thread of the server the request came in
// on.
#ifndef EVSSE_EXT_EXCHANGE_H_
#define EVSSE_EXT_EXCHANGE_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/export.h"

struct evbuffer;

namespace evsse {

enum class Method { kGet, kHead, kPost, kOptions, kOther };

// ExchangeListener learns what happens to an exchange the core keeps open.
class EVSSE_API ExchangeListener {
 public:
  virtual ~ExchangeListener() = default;
  // OnDrained: every byte written so far has been handed to the kernel,
  // after a Write that left bytes queued (a Write after which queued() is 0
  // may get no OnDrained). May be called many times. The listener may
  // write, End or Abort inside.
  virtual void OnDrained() = 0;
  // OnClosed: the connection is gone (peer closed, reset, server freed)
  // before the core called Reply, End or Abort. Called at most once; the
  // exchange is destroyed right after it returns, so the listener must drop
  // its pointer. Never called after Reply, End or Abort.
  virtual void OnClosed() = 0;
};

// Exchange: one HTTP request/response. The adapter owns it. The core must not
// use it after calling Reply, End or Abort, nor after OnClosed returned. None
// of these calls re-enter the listener synchronously.
class EVSSE_API Exchange {
 public:
  virtual ~Exchange() = default;

  // Request side (valid until the response is finished).
  virtual Method method() const = 0;
  virtual std::string_view method_name() const = 0;
  virtual std::string_view path() const = 0;
  // query returns the raw query string, still percent-encoded, without '?'.
  virtual std::string_view query() const = 0;
  // header returns nullptr when absent; names are case-insensitive.
  virtual const char* header(const char* name) const = 0;
  // body returns the whole request body (the adapter buffered it).
  virtual std::string_view body() = 0;
  virtual bool http10() const = 0;
  virtual std::string peer() const = 0;
  // socket returns the connection's file descriptor, or -1 when there is
  // none (a test double). The core sets TCP options on it for streams
  // (StreamOptions::dead_peer_timeout); the adapter must not close it.
  virtual int socket() const { return -1; }

  virtual void set_listener(ExchangeListener* listener) = 0;

  // AddHeader adds a response header; only before Reply or Start.
  virtual void AddHeader(const char* name, const char* value) = 0;

  // Reply sends a whole response and finishes the exchange.
  virtual void Reply(int status, const char* reason, std::string_view body) = 0;

  // Start sends the status line and headers of a streamed response (chunked
  // on HTTP/1.1, raw until close on HTTP/1.0) and turns off any read or write
  // timeout the server applies to idle connections: the core keeps its own.
  virtual void Start(int status, const char* reason) = 0;
  // Write queues the contents of `data` (drained by the call) and flushes as
  // soon as the socket allows, possibly before it returns. Never calls the
  // listener from inside.
  virtual void Write(evbuffer* data) = 0;
  // queued returns bytes written but not yet handed to the kernel.
  virtual size_t queued() const = 0;
  // End finishes the streamed response cleanly (the connection may be kept
  // alive for another request).
  virtual void End() = 0;
  // Abort drops the connection (deferred to a fresh loop iteration; pending
  // output is discarded).
  virtual void Abort() = 0;
};

// Handler is a mounted endpoint. The adapter calls Handle once per request;
// the handler owns the exchange's response from then on.
//
// A Handler is owned by its Hub and goes with it. An adapter whose server
// may outlive the Hub registers OnGone to stop routing to it: `gone` runs
// (loop thread) when the Handler is destroyed, after its exchanges ended.
class EVSSE_API Handler {
 public:
  virtual ~Handler() {
    for (auto& gone : on_gone_) gone();
  }
  virtual void Handle(Exchange* exchange) = 0;
  void OnGone(std::function<void()> gone) {
    on_gone_.push_back(std::move(gone));
  }

 private:
  std::vector<std::function<void()>> on_gone_;
};

}  // namespace evsse

#endif  // EVSSE_EXT_EXCHANGE_H_
