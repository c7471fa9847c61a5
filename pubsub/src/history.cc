#include "evsse/pubsub/history.h"

#include <algorithm>
#include <utility>

namespace evsse::pubsub {
namespace {

// What a std::string holds on the heap beyond its inline buffer (libstdc++
// keeps up to 15 characters inside the object).
size_t HeapOf(const std::string& s) {
  return s.capacity() > 15 ? s.capacity() + 1 : 0;
}

// The smallest ring kept once it has grown: shrinking below this saves
// less than a malloc block.
constexpr uint32_t kMinShrink = 8;

}  // namespace

size_t EventBytes(const Event& e) {
  return sizeof(Event) + HeapOf(e.wire) + HeapOf(e.topic) + sizeof(EventRef);
}

void TopicHistory::Append(EventRef event) {
  if (size_ == capacity_) Resize(capacity_ == 0 ? 1 : capacity_ * 2);
  last_ = event->position;
  size_t b = EventBytes(*event);
  bytes_ += b;
  if (meter_) {
    meter_->bytes += b;
    ++meter_->events;
  }
  ring_[(head_ + size_) & (capacity_ - 1)] = std::move(event);
  ++size_;
}

void TopicHistory::Resize(uint32_t capacity) {
  auto grown = std::make_unique<EventRef[]>(capacity);
  for (uint32_t i = 0; i < size_; ++i)
    grown[i] = std::move(ring_[(head_ + i) & (capacity_ - 1)]);
  ring_ = std::move(grown);
  capacity_ = capacity;
  head_ = 0;
}

size_t TopicHistory::FirstAfter(Position p) const {
  const size_t n = size_;
  // Subscribers are usually a few events behind the newest: walk back a
  // little before paying for a binary search.
  size_t i = n;
  for (int steps = 0; i > 0 && steps < 8; ++steps) {
    if ((*this)[i - 1]->position <= p) return i;
    --i;
  }
  // Binary search over [0, i): the first event after p.
  size_t lo = 0, hi = i;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if ((*this)[mid]->position <= p)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void TopicHistory::PopOldest() {
  evicted_up_to_ = std::max(evicted_up_to_, ring_[head_]->position);
  Release(ring_[head_]);
  head_ = (head_ + 1) & (capacity_ - 1);
  --size_;
  Shrink();
}

void TopicHistory::Release(EventRef& slot) {
  size_t b = EventBytes(*slot);
  bytes_ -= b;
  if (meter_) {
    meter_->bytes -= b;
    --meter_->events;
  }
  slot = EventRef();
}

void TopicHistory::Shrink() {
  if (size_ == 0) {
    // An emptied history keeps no block: most topics go quiet for good.
    ring_.reset();
    capacity_ = head_ = 0;
  } else if (capacity_ > kMinShrink && size_ <= capacity_ / 4) {
    Resize(capacity_ / 2);
  }
}

size_t TopicHistory::TrimToCount(size_t max_events) {
  size_t n = 0;
  for (; size_ > max_events; ++n) PopOldest();
  return n;
}

size_t TopicHistory::TrimOlderThan(int64_t min_published_ms) {
  size_t n = 0;
  for (; size_ > 0 && front()->published_ms < min_published_ms; ++n)
    PopOldest();
  return n;
}

size_t TopicHistory::DropUpTo(Position p) {
  size_t n = 0;
  for (; size_ > 0 && front()->position <= p; ++n) PopOldest();
  return n;
}

size_t TopicHistory::DropAfter(Position p) {
  size_t n = 0;
  for (; size_ > 0 && (*this)[size_ - 1]->position > p; ++n) {
    Release(ring_[(head_ + size_ - 1) & (capacity_ - 1)]);
    --size_;
  }
  Shrink();
  last_ = std::min(last_, p);
  evicted_up_to_ = std::min(evicted_up_to_, p);
  return n;
}

size_t TopicHistory::DropAll() {
  size_t n = size_;
  while (size_ > 0) PopOldest();
  return n;
}

void TopicHistory::RaiseFloor(Position p) {
  evicted_up_to_ = std::max(evicted_up_to_, p);
  last_ = std::max(last_, p);
}

void TopicHistory::Clear() {
  if (meter_) {
    meter_->bytes -= bytes_;
    meter_->events -= size_;
  }
  ring_.reset();
  capacity_ = head_ = size_ = 0;
  bytes_ = 0;
}

void TopicHistory::Reset() {
  Clear();
  last_ = Position();
  evicted_up_to_ = Position();
}

}  // namespace evsse::pubsub
