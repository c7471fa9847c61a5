// evsse::pubsub::TopicHistory: the retained events of one topic, oldest
// first, bounded by count and age, in memory.
//
// It also remembers the newest position it ever dropped, so that a cursor
// older than what is retained is recognised (and answered with a gap), never
// mistaken for "up to date".
//
// Memory: the events sit in a ring that grows and shrinks by powers of two
// (a topic holding one event costs one small block, not a deque's 512-byte
// chunk), and every history may report what it holds to a HistoryMeter
// shared by all the topics of one Hub, so that a budget over all of them
// needs no scan.
//
// Thread safety: none; owned by one loop.
#ifndef EVSSE_PUBSUB_HISTORY_H_
#define EVSSE_PUBSUB_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "evsse/export.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/event.h"

namespace evsse::pubsub {

// HistoryMeter: what the histories reporting to it hold, in all.
struct HistoryMeter {
  size_t bytes = 0;   // EventBytes of every retained event
  size_t events = 0;  // retained events
};

// EventBytes is the memory one retained event accounts for: the Event, its
// encoded bytes and topic name as allocated, and its slot in the ring.
EVSSE_API size_t EventBytes(const Event& e);

class EVSSE_API TopicHistory {
 public:
  TopicHistory() = default;
  explicit TopicHistory(HistoryMeter* meter) : meter_(meter) {}
  ~TopicHistory() { Clear(); }
  TopicHistory(const TopicHistory&) = delete;
  TopicHistory& operator=(const TopicHistory&) = delete;

  // Append adds the newest event; its position must exceed last().
  void Append(EventRef event);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const EventRef& operator[](size_t i) const {
    return ring_[(head_ + i) & (capacity_ - 1)];
  }
  const EventRef& front() const { return (*this)[0]; }
  // bytes is EventBytes of the retained events, in all.
  size_t bytes() const { return bytes_; }

  // FirstAfter returns the index of the oldest event whose position is
  // greater than `p` (size() when there is none). Cheap when `p` is near the
  // newest event, which is the common case.
  size_t FirstAfter(Position p) const;

  // The Trim* and Drop* calls return how many events they dropped.
  // TrimToCount drops the oldest events beyond `max_events`.
  size_t TrimToCount(size_t max_events);
  // TrimOlderThan drops events published before `min_published_ms`.
  size_t TrimOlderThan(int64_t min_published_ms);
  // DropUpTo drops the events at or before `p`.
  size_t DropUpTo(Position p);
  // DropAfter drops the events after `p`, newest first, and forgets that
  // they were ever there: last() and evicted_up_to() go no higher than `p`
  // (a failover lost them; what is appended next may sort below them).
  size_t DropAfter(Position p);
  // DropAll drops every event (they count as evicted: cursors before the
  // newest one get a gap).
  size_t DropAll();

  // last returns the newest position ever appended (retained or not).
  Position last() const { return last_; }
  // evicted_up_to returns the newest position dropped so far: a cursor below
  // it has missed events.
  Position evicted_up_to() const { return evicted_up_to_; }
  // Raise both marks, for a history that starts after earlier ones were
  // forgotten (a topic recreated).
  void RaiseFloor(Position p);
  // Reset forgets every event and both marks (a history that starts anew,
  // under another epoch).
  void Reset();

 private:
  void PopOldest();
  // Release empties one slot and takes its event off the accounts.
  void Release(EventRef& slot);
  // Shrink gives back ring memory a smaller history no longer needs.
  void Shrink();
  void Resize(uint32_t capacity);
  void Clear();

  std::unique_ptr<EventRef[]> ring_;
  uint32_t capacity_ = 0;  // 0 or a power of two
  uint32_t head_ = 0;
  uint32_t size_ = 0;
  size_t bytes_ = 0;
  HistoryMeter* meter_ = nullptr;
  Position last_;
  Position evicted_up_to_;
};

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_HISTORY_H_
