// evsse::Hub: the broker and the subscribers of one event loop.
//
// A Hub lives on the caller's event_base. Stream and publish endpoints are
// created from it and mounted on an HTTP server by an adapter
// (evsse/evhttp.h). Events published on the Hub are encoded once, kept in a
// per-topic history for resume, and written to every subscriber of their
// topic.
//
// Threads: Publish may be called from any thread. Everything else belongs to
// the thread running the Hub's event_base (the loop thread), including
// construction and destruction.
//
// Lifetime: the event_base must outlive the Hub. The order between the Hub
// and the HTTP server depends on the adapter: with evhttp, free the server
// first (that closes its streams), then the Hub; with libevhtp, destroy the
// Hub first (evhtp_free leaves connections open). See evsse/evhttp.h and
// evsse/evhtp.h.
//
// Minimal use:
//
//   auto hub = evsse::Hub::Create(base, {}).value();
//   evsse::evhttp::Mount(http, "/events", hub.get(), {});
//   hub->Publish("orders", {"update", "{\"id\":42}"}).IgnoreError();
#ifndef EVSSE_HUB_H_
#define EVSSE_HUB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "evsse/export.h"
#include "evsse/ext/backend.h"
#include "evsse/ext/exchange.h"
#include "evsse/options.h"
#include "evsse/status.h"

struct event_base;

namespace evsse {

// Message is what a producer publishes. The id is assigned by the Hub.
struct Message {
  std::string type;  // SSE event type; empty means "message"
  std::string data;  // any UTF-8 text; CR/LF split into data lines
};

// PublishCallback receives the id assigned to a published event, or an
// error. It fires exactly once, on the Hub's loop thread: in memory mode
// once the event is in the topic's history, before its fan-out (which
// follows at once, or within HubOptions::coalesce_window); with a shared store
// (evsse::redis) once the store assigned the id (delivery follows through
// the store); with kCancelled when the Hub is destroyed first, with
// kUnavailable when the store cannot be reached (not published), and with
// kUnknown when the store's answer was lost after the event was sent to it
// (it may have been stored and delivered: do not blindly publish it again).
using PublishCallback = std::function<void(Result<std::string> id)>;

// HubStats: counters since the Hub was created; read on the loop thread.
struct HubStats {
  uint64_t connections_active = 0;  // open streams
  uint64_t connections_total = 0;   // streams ever started
  uint64_t connections_shed = 0;    // refused by a limit or while draining
  uint64_t requests_rejected = 0;   // 4xx answered by stream endpoints
  uint64_t events_published = 0;    // events accepted by this Hub's loop
  uint64_t events_delivered = 0;    // event writes to subscribers
  uint64_t publish_errors = 0;
  uint64_t replays = 0;  // connections that resumed from a cursor
  uint64_t replayed_events = 0;
  uint64_t gaps = 0;                  // gap events sent
  uint64_t slow_consumer_closes = 0;  // closed past max_queued_bytes or behind
  uint64_t stall_closes = 0;          // closed by write_stall_timeout
  uint64_t lifetime_closes = 0;       // ended by max_lifetime
  uint64_t heartbeats = 0;
  uint64_t polls = 0;           // transport=poll requests answered
  uint64_t topics = 0;          // topics currently known
  uint64_t history_events = 0;  // events currently retained
  uint64_t history_bytes = 0;   // what they hold (see history_max_bytes)
  // Topics evicted whole, and history events dropped early, to stay within
  // history_max_bytes or max_topics; events dropped by history_max_age.
  uint64_t topics_evicted = 0;
  uint64_t history_events_evicted = 0;
  uint64_t history_events_expired = 0;
  // A shared store (evsse::redis, evsse::kafka), when one is attached.
  bool backend_attached = false;
  BackendStats backend;
  // Backend mode: pages of older events resuming sessions asked for, and
  // how many of them another session's fetch served (one in flight, or a
  // page fetched moments before): only the others reach the store.
  uint64_t replay_page_requests = 0;
  uint64_t replay_pages_shared = 0;
};

class Hub {
 public:
  // Create makes a Hub on `base` (not owned). Fails on invalid options.
  EVSSE_API static Result<std::unique_ptr<Hub>> Create(event_base* base,
                                                       HubOptions options);

  // ~Hub closes every stream at once (no final bytes), fails pending
  // publish callbacks with kCancelled, detaches its store (Backend::HubGone)
  // and takes its endpoints with it (a path still mounted answers 503).
  // Loop thread only.
  EVSSE_API ~Hub();

  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Publish validates `message` and `topic` and queues the event for the
  // loop thread. Any thread. An invalid topic, type or data (CR/LF/NUL in
  // the type, invalid UTF-8, too large) or a closed Hub is reported at once
  // by the returned Status, and `done` is then never called. Otherwise the
  // event is accepted and `done` (if set) fires exactly once.
  EVSSE_API Status Publish(std::string_view topic, Message message,
                           PublishCallback done = nullptr);

  // AddStreamEndpoint creates a subscribe endpoint (owned by the Hub) for an
  // adapter to mount. Fails on invalid options (e.g. CORS "*" with
  // credentials).
  EVSSE_API Result<Handler*> AddStreamEndpoint(StreamOptions options);

  // AddPublishEndpoint creates an HTTP publish endpoint: POST, the body is
  // the event's data, `topic` (and optional `event`) from the query; answers
  // 200 {"id":"..."}, 503 when not published (store down: safe to retry) or
  // 504 when the outcome is unknown (kUnknown, see PublishCallback).
  EVSSE_API Result<Handler*> AddPublishEndpoint(PublishOptions options);

  // Shutdown drains the Hub: new requests are shed (200 + retry + close for
  // EventSource clients, 503 + Retry-After otherwise), and open streams get a
  // final retry hint and are ended in waves spread over `deadline`. `done`
  // fires exactly once, on the loop thread, when the last stream has ended
  // (at once if none is open). Calling it again only replaces nothing: the
  // second `done` fires with the first.
  EVSSE_API void Shutdown(Millis deadline, std::function<void()> done);

  // AttachBackend routes publishing and replay through a shared store
  // (`backend` is not owned and must stay valid until detached with
  // nullptr, or until the Hub is destroyed: a Hub that goes first calls
  // Backend::HubGone and forgets it) and returns the sink the backend
  // reports to. Call it before the first request or publish. evsse::redis
  // calls it; applications normally do not.
  EVSSE_API BackendSink* AttachBackend(Backend* backend);

  EVSSE_API HubStats stats() const;
  // options returns the options the Hub was created with (loop thread).
  EVSSE_API const HubOptions& options() const;
  EVSSE_API event_base* base() const;
  // epoch names this Hub's history in ids (base 36 in the text form).
  EVSSE_API uint64_t epoch() const;

 private:
  Hub() = default;
  friend class HubAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace evsse

#endif  // EVSSE_HUB_H_
