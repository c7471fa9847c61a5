#include "evsse/pubsub/history.h"

#include <algorithm>
#include <utility>

namespace evsse::pubsub {

void TopicHistory::Append(EventRef event) {
  last_ = event->position;
  events_.push_back(std::move(event));
}

size_t TopicHistory::FirstAfter(Position p) const {
  const size_t n = events_.size();
  // Subscribers are usually a few events behind the newest: walk back a
  // little before paying for a binary search.
  size_t i = n;
  for (int steps = 0; i > 0 && steps < 8; ++steps) {
    if (events_[i - 1]->position <= p) return i;
    --i;
  }
  if (i == 0) return 0;
  auto it = std::upper_bound(
      events_.begin(), events_.begin() + static_cast<ptrdiff_t>(i), p,
      [](Position a, const EventRef& e) { return a < e->position; });
  return static_cast<size_t>(it - events_.begin());
}

void TopicHistory::PopOldest() {
  evicted_up_to_ = std::max(evicted_up_to_, events_.front()->position);
  events_.pop_front();
}

void TopicHistory::TrimToCount(size_t max_events) {
  while (events_.size() > max_events) PopOldest();
}

void TopicHistory::TrimOlderThan(int64_t min_published_ms) {
  while (!events_.empty() && events_.front()->published_ms < min_published_ms)
    PopOldest();
}

void TopicHistory::RaiseFloor(Position p) {
  evicted_up_to_ = std::max(evicted_up_to_, p);
  last_ = std::max(last_, p);
}

}  // namespace evsse::pubsub
