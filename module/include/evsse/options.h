// Options of the Hub and of its endpoints: plain aggregates with their
// defaults in member initializers. Code fills them directly; conf/ files fill
// the same structs.
//
// Thread safety: values; copied by the Hub when an endpoint is created.
#ifndef EVSSE_OPTIONS_H_
#define EVSSE_OPTIONS_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/export.h"
#include "evsse/millis.h"
#include "evsse/status.h"

namespace evsse {

namespace pubsub {
class Bus;
}

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// LogHook receives every log line of the library (which never prints). Called
// on the Hub's loop thread, except where a message says otherwise.
using LogHook = std::function<void(LogLevel level, std::string_view message)>;

// Request is a read-only view of an HTTP request, valid only during the call
// it is passed to.
class EVSSE_API Request {
 public:
  virtual ~Request() = default;
  virtual std::string_view method() const = 0;  // "GET", "POST", ...
  virtual std::string_view path() const = 0;
  // header returns nullptr when absent (names are case-insensitive).
  virtual const char* header(const char* name) const = 0;
  // query returns the first decoded value of a query parameter.
  virtual std::optional<std::string> query(std::string_view key) const = 0;
  // topics the request asks for (subscribe) or publishes to (publish).
  virtual const std::vector<std::string>& topics() const = 0;
  virtual std::string peer() const = 0;  // "ip:port"
};

// AuthDecision is what an authorization hook answers. status 200 lets the
// request through; 401, 403 and 204 ("stop reconnecting") end it with that
// status and `message` as the body; any other value is treated as 403.
struct AuthDecision {
  int status = 200;
  std::string message;
  // Extra response headers for a refusal (e.g. WWW-Authenticate).
  std::vector<std::pair<std::string, std::string>> headers;

  static AuthDecision Allow() { return {}; }
  static AuthDecision Deny(int status, std::string message) {
    return AuthDecision{status, std::move(message), {}};
  }
};

// AuthHook runs on the loop thread before any response byte is sent. For a
// subscribe request it must allow every requested topic or refuse the whole
// request: a refused topic is never streamed nor replayed.
using AuthHook = std::function<AuthDecision(const Request& request)>;

// HubOptions: the broker, its history and hub-wide limits.
struct HubOptions {
  // Per-topic history kept for resume (Last-Event-ID). 0 disables replay.
  size_t history_max_events = 1000;
  // Events older than this are dropped from history. 0 = no age limit.
  Millis history_max_age{3600000};
  // The memory all topics' history may hold, in bytes: each event counts
  // its encoded bytes plus about 130 bytes of bookkeeping, each topic about
  // 400 bytes. When it is
  // reached, the least recently used topics nobody subscribes to are
  // evicted whole, then events every subscriber already has; a cursor into
  // evicted history gets the gap event. A publish is refused only when the
  // rest is owed to live subscribers. 0 = no budget (count and age only).
  size_t history_max_bytes = size_t{256} << 20;
  // Subscribers across all stream endpoints of this Hub; then shedding.
  size_t max_connections = 10000;
  // Subscribers of one topic; 0 = unlimited.
  size_t max_subscribers_per_topic = 0;
  // Topics known to the Hub (subscribed, or holding history). A new topic
  // beyond it evicts the least recently used topic nobody subscribes to
  // (its history goes; resuming there gets the gap event); only when every
  // topic is subscribed is a new one refused (kResourceExhausted).
  size_t max_topics = 100000;
  // Largest event (type + data) accepted by Publish.
  size_t max_event_bytes = 1 << 20;
  // Longest topic name (publish and subscribe).
  size_t max_topic_length = 128;
  // Coalescing: an event for a topic that fanned out (or whose subscribers
  // were still writing), or that got another event, less than this long
  // ago waits up to this long, so that events coming faster than the loop
  // can write them leave together, several per write. An event on a quiet
  // topic goes out at once; a topic never waits with more than half of
  // history_max_events unsent. 0 = off (every batch of publishes fans out
  // at once).
  Millis coalesce_window{1};
  LogHook log;
  // Lines below this level are not even formatted.
  LogLevel log_level = LogLevel::kInfo;
  // The bus shared by Hubs on several loops of one process (null: the Hub
  // makes its own). See pubsub/bus.h.
  std::shared_ptr<pubsub::Bus> bus;
};

// StreamOptions: one subscribe endpoint (text/event-stream).
struct StreamOptions {
  // A comment line is sent after this long without any write. 0 = off.
  Millis heartbeat{15000};
  // The `retry:` sent on connect is retry + uniform(0, retry_jitter).
  Millis retry{2000};
  Millis retry_jitter{1000};
  // A connection whose queued output has not drained for this long is
  // closed (the peer stopped reading). 0 = off.
  Millis write_stall_timeout{30000};
  // A peer that vanished without closing (no FIN, no RST: a dead host, a
  // dropped route) is released once data written to it has gone
  // unacknowledged for this long (TCP_USER_TIMEOUT), or, on a quiet
  // connection, once keepalive probes (tuned to the same time) go
  // unanswered. With heartbeats the next heartbeat is such data, so a
  // vanished subscriber is freed within about heartbeat + this (about a
  // minute at the defaults). Since Linux 5.11 the same timeout also ends a
  // peer that keeps a zero receive window this long; the default stays
  // above write_stall_timeout so that a reader that stops reading is
  // normally closed (and counted) as a write stall. TCP_NODELAY is set on
  // every stream socket either way. 0 = the kernel's defaults (about 15
  // minutes of retransmissions; two hours before keepalive probes). TCP
  // sockets only.
  Millis dead_peer_timeout{45000};
  // Streams are ended after max_lifetime + uniform(0, lifetime_jitter), so
  // reconnects spread out (clients resume with Last-Event-ID). 0 = off.
  Millis max_lifetime{0};
  Millis lifetime_jitter{0};
  // High watermark of the output queued for one connection: events that
  // do not fit wait in the topic's history and are written as it drains.
  // A connection that falls out of the history (it cannot catch up any
  // more) is closed as a slow consumer; it reconnects and gets a gap.
  size_t max_queued_bytes = 1 << 20;
  // Replay (catch-up from history) is written in batches of this size, each
  // after the previous one drained.
  size_t replay_batch_bytes = 64 << 10;
  // A comment of this many bytes sent first, for proxies that buffer the
  // start of a response. 0 = none.
  size_t padding_bytes = 0;
  size_t max_topics_per_connection = 8;
  // The polling fallback (`?transport=poll`) for clients behind proxies that
  // buffer streams: answers {"events":[...],"last_event_id":...} as JSON.
  // A poll with nothing to return waits up to poll_timeout (long poll; 0
  // answers at once) and returns at most poll_max_events events.
  bool poll_enabled = true;
  Millis poll_timeout{25000};
  size_t poll_max_events = 500;
  // The event type that tells a client its cursor was older than history or
  // unknown (it should refetch state). Its data is a JSON object
  // {"topics":[...],"reason":"expired"|"unknown"}.
  std::string gap_event = "gap";
  // CORS: exact origins allowed ("https://app.example.com"), or "*" (only
  // without credentials). Empty: no CORS headers, cross-origin refused.
  // Each is `scheme://host[:port]` in lower case, with no path and no
  // trailing slash, as browsers send it (see CheckCorsOrigin).
  std::vector<std::string> cors_origins;
  bool cors_credentials = false;
  Millis cors_max_age{600000};
  AuthHook auth;
};

// CheckCorsOrigin returns an empty string when `origin` can be listed in
// StreamOptions::cors_origins ("*", or `scheme://host[:port]`: lower case,
// no path, query, user info or trailing slash, port 1..65535 without
// leading zeros), else what is wrong with it. Browsers send the Origin
// header in exactly that form and it is compared byte for byte, so any
// other spelling would never match.
EVSSE_API std::string CheckCorsOrigin(std::string_view origin);

// PublishOptions: one HTTP publish endpoint (POST, body = event data).
struct PublishOptions {
  size_t max_body_bytes = 64 << 10;
  // "Authorization: Bearer <token>" is required when not empty (compared in
  // constant time). Either a token, an auth hook or allow_unauthenticated
  // must be set, or mounting fails.
  std::string bearer_token;
  AuthHook auth;
  bool allow_unauthenticated = false;
};

// Validate checks one options struct, every field and the rules between
// them, with a message naming the field. It is the one check: Hub::Create,
// Hub::AddStreamEndpoint and AddPublishEndpoint, the configuration language
// (evsse-alerts --check) and libevhtp's worker mounts all call it, so
// options that pass one pass them all.
EVSSE_API Status Validate(const HubOptions& options);
EVSSE_API Status Validate(const StreamOptions& options);
EVSSE_API Status Validate(const PublishOptions& options);

}  // namespace evsse

#endif  // EVSSE_OPTIONS_H_
