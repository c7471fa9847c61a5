// Extension seam (for store writers, not for applications): the seam
// between a Hub and a shared store that several nodes publish
// through (evsse::redis implements it). The Hub stays free of Redis; the
// store stays free of HTTP and sessions.
//
// Everything here runs on the Hub's loop thread. Every callback passed to a
// Backend fires exactly once, also when the Backend is destroyed (with
// kCancelled) or the link is down (kUnavailable).
#ifndef EVSSE_EXT_BACKEND_H_
#define EVSSE_EXT_BACKEND_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "evsse/status.h"

namespace evsse {

// StoredEvent: one event as the store keeps it.
struct StoredEvent {
  pubsub::Position position;
  std::string type;
  std::string data;
};

// BackendSink: what a Backend tells the Hub. Implemented by the Hub.
class BackendSink {
 public:
  virtual ~BackendSink() = default;

  // Deliver hands over one live (or back-filled) event of a watched topic.
  // Events of one topic must come in position order; the Hub ignores any
  // position it already has, so re-delivery after a reconnect is harmless.
  virtual void Deliver(const std::string& topic, uint64_t epoch,
                       const StoredEvent& event) = 0;

  // Synced: the Backend now feeds every event of `topic` after `from` (its
  // stream's tail when the watch began, or the last position the Hub had
  // when a back-fill began). `epoch` names the topic's stream (0: the stream
  // does not exist yet).
  virtual void Synced(const std::string& topic, uint64_t epoch,
                      pubsub::Position from) = 0;

  // LastPosition returns the newest position of `topic` the Hub holds
  // (where a back-fill after a reconnect starts), and its epoch.
  virtual pubsub::Position LastPosition(const std::string& topic,
                                        uint64_t* epoch) = 0;

  // LinkChanged: the store became reachable (true) or not (false). While
  // down, connected subscribers keep their streams; publishes fail fast.
  virtual void LinkChanged(bool up) = 0;
};

// BackendStats: the store link's state, shown in the Hub's stats.
struct BackendStats {
  bool up = false;
  uint64_t reconnects = 0;
  uint64_t backfilled_events = 0;
  uint64_t publish_errors = 0;
  uint64_t replay_fetches = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual BackendStats backend_stats() const = 0;

  using PublishDone =
      std::function<void(Status status, uint64_t epoch, pubsub::Position)>;
  // Publish stores the event in the topic's stream and broadcasts it to
  // every node, atomically; `done` gets the assigned position. The event
  // reaches this node's subscribers through Deliver, like any other.
  virtual void Publish(const std::string& topic, std::string_view type,
                       std::string_view data, PublishDone done) = 0;

  // Watch starts feeding a topic (Deliver), then calls Synced. Unwatch stops
  // it. The Hub watches a topic while it has subscribers. After a link
  // drop, the Backend re-watches every watched topic, back-fills from the
  // last position the Hub reports through `last_position`, then calls
  // Synced again.
  virtual void Watch(const std::string& topic) = 0;
  virtual void Unwatch(const std::string& topic) = 0;

  using ExpandDone =
      std::function<void(Result<std::vector<std::vector<std::string>>>)>;
  // Expand names, for each topic a client asked for (in request order), the
  // backend topics that serve it, in a stable order (a Kafka topic: one per
  // partition). The Hub subscribes the connection to those, before its
  // response starts, and the connection's cursor holds one position per
  // backend topic. An error refuses the connection for now (503, retry).
  // The default serves every topic by itself, inside the call.
  virtual void Expand(const std::vector<std::string>& topics, ExpandDone done) {
    std::vector<std::vector<std::string>> out;
    out.reserve(topics.size());
    for (const std::string& t : topics) out.push_back({t});
    done(std::move(out));
  }

  struct FetchResult {
    uint64_t epoch = 0;  // the stream's epoch (0: no stream)
    // True when events after `after` were trimmed from the stream: the
    // client missed some (it gets the gap event).
    bool trimmed = false;
    std::vector<StoredEvent> events;  // in position order
    bool more = false;                // `limit` cut the range short
  };
  using FetchDone = std::function<void(Result<FetchResult>)>;
  // Fetch reads a topic's stored events with positions in (after, until],
  // at most `limit` of them, for a client resuming from `after`.
  virtual void Fetch(const std::string& topic, pubsub::Position after,
                     pubsub::Position until, size_t limit, FetchDone done) = 0;

  // HubGone: the Hub this Backend reports to is being destroyed, and
  // detaches it first (so a Hub may go before its store; the store object
  // stays its owner's). Fire every pending callback now (kCancelled), stop
  // calling the sink, and never call back into the Hub again (not even from
  // the destructor). Everything the Hub handed over is still alive during
  // this call. The default does nothing: right for a Backend that holds no
  // callbacks past its calls.
  virtual void HubGone() {}
};

}  // namespace evsse

#endif  // EVSSE_EXT_BACKEND_H_
