// Topic: one topic of a Hub, its history and subscribers. Loop thread only.
#ifndef EVSSE_CORE_TOPIC_H_
#define EVSSE_CORE_TOPIC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/history.h"
#include "lists.h"

namespace evsse::internal {

class Subscription;

struct TopicTag;

// Topic: one topic this Hub knows. A topic is kept while it is in use
// (subscribers, events to fan out, a backend feed) or holds history; one
// that is neither is forgotten at once. Topics holding history sit in one of
// two lists, oldest use first: idle (nobody uses it: evicted whole, least
// recently used first, when memory or max_topics runs short) or busy (in
// use: only events every subscriber already has may be evicted).
struct Topic final : Link<TopicTag> {
  enum class In : uint8_t { kNone, kIdle, kBusy };
  explicit Topic(pubsub::HistoryMeter* meter) : history(meter) {}
  std::string name;
  pubsub::TopicHistory history;
  In in = In::kNone;
  // Subscribers; each session remembers its slot here for O(1) removal.
  std::vector<Subscription*> subscribers;
  // When the topic last fanned out, or one of its live subscribers last
  // finished writing (NowUs): events that come sooner are coalesced.
  int64_t active_us = 0;
  // When its last event arrived (NowUs), and whether the events waiting to
  // fan out came less than a coalescing window after the one before.
  int64_t arrived_us = 0;
  bool burst = false;
  // Events not fanned out yet; above 0 exactly while in dirty_topics_.
  size_t unsent = 0;
  // The epoch of the topic's history (memory mode: the bus epoch; backend
  // mode: the stream's, 0 while it does not exist).
  uint64_t epoch = 0;
  // Backend mode: the backend feeds this topic and `history` holds every
  // event after `synced_from` (older ones are fetched for resuming clients).
  bool watched = false;
  bool synced = true;
  pubsub::Position synced_from;
  std::vector<Subscription*> waiting;  // sessions waiting for the first sync
  // Earlier epochs `epoch` continues, newest first (a failover; see
  // BackendSink::Continued). Rare: not allocated until one happens.
  std::unique_ptr<std::vector<FormerEpoch>> former;
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_TOPIC_H_
