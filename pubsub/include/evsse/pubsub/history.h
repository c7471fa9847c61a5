// evsse::pubsub::TopicHistory: the retained events of one topic, oldest
// first, bounded by count and age, in memory.
//
// It also remembers the newest position it ever dropped, so that a cursor
// older than what is retained is recognised (and answered with a gap), never
// mistaken for "up to date".
//
// Thread safety: none; owned by one loop.
#ifndef EVSSE_PUBSUB_HISTORY_H_
#define EVSSE_PUBSUB_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>

#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/event.h"

namespace evsse::pubsub {

class TopicHistory {
 public:
  // Append adds the newest event; its position must exceed last().
  void Append(EventRef event);

  size_t size() const { return events_.size(); }
  bool empty() const { return events_.empty(); }
  const EventRef& operator[](size_t i) const { return events_[i]; }

  // FirstAfter returns the index of the oldest event whose position is
  // greater than `p` (size() when there is none). Cheap when `p` is near the
  // newest event, which is the common case.
  size_t FirstAfter(Position p) const;

  // TrimToCount drops the oldest events beyond `max_events`.
  void TrimToCount(size_t max_events);
  // TrimOlderThan drops events published before `min_published_ms`.
  void TrimOlderThan(int64_t min_published_ms);

  // last returns the newest position ever appended (retained or not).
  Position last() const { return last_; }
  // evicted_up_to returns the newest position dropped so far: a cursor below
  // it has missed events.
  Position evicted_up_to() const { return evicted_up_to_; }
  // Raise both marks, for a history that starts after earlier ones were
  // forgotten (a topic recreated).
  void RaiseFloor(Position p);

 private:
  void PopOldest();

  std::deque<EventRef> events_;
  Position last_;
  Position evicted_up_to_;
};

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_HISTORY_H_
