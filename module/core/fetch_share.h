// FetchShare: the pages resuming sessions fetch from the Backend, shared by
// every session of one Hub. Clients that reconnect together (after a deploy,
// a network blip, a node restart) resume from the same cursors and walk the
// same pages; without sharing, N sessions cost N round trips per page and N
// copies of every event. Here an identical request joins the one in flight,
// and a page fetched in the last moments is answered from a small cache
// (bounded in bytes and age), with its events encoded once.
//
// Freshness: the stored range (after, until] of a stream does not change,
// except by trimming (the cache then hands out events the store has since
// dropped: the client gets more, never less) or by a wipe / recreation of
// the stream (a new epoch). The Hub drops a topic's pages when it learns of
// a new epoch and all pages when the link goes down; the age bound caps how
// long a page fetched before a wipe it did not learn of yet can be served.
//
// Loop thread only.
#ifndef EVSSE_SRC_FETCH_SHARE_H_
#define EVSSE_SRC_FETCH_SHARE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/options.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/history.h"
#include "timer.h"

struct event;
struct event_base;

namespace evsse::internal {

// Page: one fetched page of a topic's stream, its events encoded once (with
// the page's epoch) for every session that reads it.
struct Page {
  uint64_t epoch = 0;    // the stream's epoch (0: no stream)
  bool trimmed = false;  // events after the request's `after` were trimmed
  std::vector<FormerEpoch> former;  // epochs `epoch` continues, newest first
  bool ahead = false;  // the request's `after` is past the stream's end
  // The store had more events in (after, until] than the page holds.
  bool more = false;
  pubsub::Position until;  // the page answers the range (after, until]
  std::vector<pubsub::EventRef> events;  // in position order
  size_t bytes = 0;
};
using PageRef = std::shared_ptr<const Page>;

class FetchShare {
 public:
  using Done = std::function<void(Result<PageRef>)>;
  // Encode turns a stored event of `topic` into the shared event sessions
  // write (HubImpl::MakeEvent).
  using Encode = std::function<pubsub::EventRef(
      const std::string& topic, uint64_t epoch, const StoredEvent&)>;

  // `base` (not owned) runs the deferred answers and the expiry timer.
  // Pages are kept at most `ttl`, and at most `max_bytes` in all.
  FetchShare(event_base* base, Encode encode, size_t max_bytes, Millis ttl);
  // ~FetchShare calls every Done still waiting with kCancelled; replies the
  // Backend sends later are dropped.
  ~FetchShare();
  FetchShare(const FetchShare&) = delete;
  FetchShare& operator=(const FetchShare&) = delete;

  // Fetch answers the page of `topic` after `after` (exclusive), up to
  // `until`, at most `limit` events, through `done`: exactly once, never
  // inside this call. A cached page or a fetch in flight serves the request
  // when it starts at the same `after`, has at least `limit` and reaches at
  // least `until`: such a page may hold events past `until` (the caller
  // stops there; reaching one means the range is complete). Otherwise the
  // request goes to `backend` (not owned, must outlive the reply).
  void Fetch(Backend* backend, const std::string& topic, pubsub::Position after,
             pubsub::Position until, size_t limit, Done done);

  // DropTopic forgets the topic's pages, and lets no new request join its
  // fetches in flight (they still answer their waiters): its stream got a
  // new epoch. Clear does so for every topic: the link went down.
  void DropTopic(const std::string& topic);
  void Clear();

  // Counters: requests made, how many went to the backend, how many were
  // served by a fetch in flight or by the cache.
  uint64_t requests() const { return requests_; }
  uint64_t fetches() const { return fetches_; }
  uint64_t shared() const { return joined_ + cache_hits_; }
  uint64_t joined() const { return joined_; }
  uint64_t cache_hits() const { return cache_hits_; }
  size_t cached_bytes() const { return bytes_; }
  size_t cached_pages() const { return pages_; }

 private:
  struct Flight {
    std::string topic;
    pubsub::Position after, until;
    size_t limit = 0;
    bool joinable = true;  // false after DropTopic / Clear
    bool finished = false;
    std::vector<Done> waiters;
  };
  struct Entry {
    uint64_t serial = 0;
    pubsub::Position after;
    size_t limit = 0;
    PageRef page;
  };
  struct Slot {
    std::vector<std::shared_ptr<Flight>> flights;
    std::vector<Entry> pages;
  };
  // Order: cached pages, oldest first (expiry and eviction order).
  struct Aged {
    std::string topic;
    uint64_t serial;
    int64_t expires_ms;
  };

  void Complete(const std::shared_ptr<Flight>& flight,
                Result<Backend::FetchResult> r);
  void Store(const std::string& topic, pubsub::Position after, size_t limit,
             PageRef page);
  void Remove(const std::string& topic, uint64_t serial);
  void Expire(int64_t now_ms);
  void ArmTimer();
  void Defer(Done done, Result<PageRef> r);
  static void OnTimer(int, short, void* arg);
  static void OnReady(int, short, void* arg);

  Encode encode_;
  size_t max_bytes_;
  Millis ttl_;
  std::unordered_map<std::string, Slot> slots_;
  std::deque<Aged> order_;
  uint64_t next_serial_ = 1;
  size_t bytes_ = 0;
  size_t pages_ = 0;
  std::deque<std::pair<Done, Result<PageRef>>> ready_;  // deferred answers
  OwnedEvent timer_;
  OwnedEvent ready_event_;
  uint64_t requests_ = 0;
  uint64_t fetches_ = 0;
  uint64_t joined_ = 0;
  uint64_t cache_hits_ = 0;
};

}  // namespace evsse::internal

#endif  // EVSSE_SRC_FETCH_SHARE_H_
