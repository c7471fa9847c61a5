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

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/export.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/status.h"

namespace evsse {

// StoredEvent: one event as the store keeps it.
struct StoredEvent {
  pubsub::Position position;
  std::string type;
  std::string data;
};

// FormerEpoch: an earlier epoch of a topic's stream that its current epoch
// continues. A failover promotes a server that may lack the old primary's
// newest entries: the stream goes on under a new epoch from what the new
// server has. Positions of `epoch` up to `end` mean the same in the current
// epoch; later positions of `epoch` were lost.
struct FormerEpoch {
  uint64_t epoch = 0;
  pubsub::Position end;
};

// ContinuedEnd returns where `epoch` ends inside the current epoch, given
// the former epochs newest first, or nullopt when `epoch` is none of them.
// Across several failovers the least end along the way counts.
inline std::optional<pubsub::Position> ContinuedEnd(
    const std::vector<FormerEpoch>& former, uint64_t epoch) {
  std::optional<pubsub::Position> end;
  for (const FormerEpoch& f : former) {
    end = end ? std::min(*end, f.end) : f.end;
    if (f.epoch == epoch) return end;
  }
  return std::nullopt;
}

// WrittenEpoch is the epoch the event at `p` was written in, for a stream
// now in `epoch` that continues `former` (newest first): the oldest former
// epoch whose end is at or after `p`, else `epoch`. An event keeps the id
// it was first delivered with, whichever way it is read later.
inline uint64_t WrittenEpoch(const std::vector<FormerEpoch>& former,
                             uint64_t epoch, pubsub::Position p) {
  for (auto f = former.rbegin(); f != former.rend(); ++f)
    if (p <= f->end) return f->epoch;
  return epoch;
}

// BackendSink: what a Backend tells the Hub. Implemented by the Hub.
class EVSSE_API BackendSink {
 public:
  virtual ~BackendSink() = default;

  // Deliver hands over one live (or back-filled) event of a watched topic,
  // with the epoch it was written in (WrittenEpoch: after Continued, an
  // event up to the end of the old epoch still carries the old one).
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

  // Continued: `topic`'s stream goes on under `epoch`, continuing
  // `old_epoch` up to `end` (see FormerEpoch). Called before any event of
  // `epoch` is delivered. The Hub keeps what it has up to `end`, forgets
  // what it has after it (lost), and closes the subscribers that had any of
  // that: they resume with their cursor and get the gap event.
  virtual void Continued(const std::string& topic, uint64_t old_epoch,
                         uint64_t epoch, pubsub::Position end) = 0;

  // LastPosition returns the newest position of `topic` the Hub holds
  // (where a back-fill after a reconnect starts), and its epoch.
  virtual pubsub::Position LastPosition(const std::string& topic,
                                        uint64_t* epoch) = 0;

  // LinkChanged: the store became reachable (true) or not (false). While
  // down, connected subscribers keep their streams; publishes fail fast.
  virtual void LinkChanged(bool up) = 0;

  // Restarted: the stream of a watched topic started over under the same
  // epoch (a Kafka topic deleted and created again: its offsets begin anew
  // at 0), so the positions the Hub holds of it mean nothing now. The Hub
  // drops them and ends the topic's subscribers (they resume with their
  // cursor and get the gap event); from here on it is synced at `from`, as
  // after Synced.
  virtual void Restarted(const std::string& topic, uint64_t epoch,
                         pubsub::Position from) = 0;

  // ExpansionChanged: Backend::Expand would now serve the requested topic
  // `topic` by other backend topics than before (partitions added to a
  // Kafka topic). The Hub ends, cleanly, the streams that asked for it: the
  // client reconnects with its cursor and then follows the new set (the new
  // topics from their start, see Backend::FitCursor).
  virtual void ExpansionChanged(const std::string& topic) = 0;
};

// BackendStats: the store link's state, shown in the Hub's stats.
struct BackendStats {
  bool up = false;
  uint64_t reconnects = 0;
  uint64_t backfilled_events = 0;
  uint64_t publish_errors = 0;
  uint64_t replay_fetches = 0;
};

class EVSSE_API Backend {
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

  // FitCursor: a resuming client's cursor (one position per backend topic,
  // as handed out) has another count of positions than `expanded`
  // (Expand's answer for its request) now names, because a requested topic
  // is served by other backend topics than when the cursor was made.
  // FitCursor inserts, for each backend topic the cursor lacks, the
  // position "before the stream existed" (pubsub::TopicCursor{}: everything
  // in it is new to the client), drops the positions of backend topics that
  // no longer serve the request, and returns true; false when it cannot
  // tell which positions belong to which requested topic (the request then
  // gets 400). The default handles one requested topic grown: the new
  // backend topics are the last ones.
  virtual bool FitCursor(const std::vector<std::vector<std::string>>& expanded,
                         std::vector<pubsub::TopicCursor>* cursor) const {
    if (expanded.size() != 1 || cursor->size() > expanded[0].size())
      return false;
    cursor->resize(expanded[0].size(), pubsub::TopicCursor{});
    return true;
  }

  struct FetchResult {
    uint64_t epoch = 0;  // the stream's epoch (0: no stream)
    // True when events after `after` were trimmed from the stream: the
    // client missed some (it gets the gap event).
    bool trimmed = false;
    // Earlier epochs the stream continues, newest first (see FormerEpoch):
    // a cursor of one of them up to its end reads on in `epoch`.
    std::vector<FormerEpoch> former;
    // True when `after` lies past the stream's end: no position this stream
    // ever handed out, so one of an earlier stream under the same epoch (a
    // Kafka topic deleted and created again). The client gets the gap event
    // (reason "unknown"). The Hub asks this of a cursor past the newest
    // position it holds, with an empty range (until == after).
    bool ahead = false;
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
