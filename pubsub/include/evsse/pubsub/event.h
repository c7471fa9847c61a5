// evsse::pubsub::Event: one published event, stored once and shared by
// reference by every history and every subscriber that holds it.
//
// An Event is immutable once published and reference counted (atomically),
// so it may be shared across the loops of one process.
#ifndef EVSSE_PUBSUB_EVENT_H_
#define EVSSE_PUBSUB_EVENT_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "evsse/pubsub/cursor.h"

namespace evsse::pubsub {

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  std::string topic;
  uint64_t epoch = 0;
  Position position;
  int64_t published_ms = 0;  // steady clock, milliseconds
  // The encoded bytes as a subscriber of this topic alone receives them. The
  // first `body_size` bytes are the event without its id line: a subscriber
  // of several topics sends those, then its own composite id. pubsub treats
  // both as opaque bytes.
  std::string wire;
  uint32_t body_size = 0;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  mutable std::atomic<uint32_t> refs_{0};
};

// EventRef: an owning, copyable reference to an Event (intrusive count, so
// a raw Event* can be handed to C callbacks and re-adopted).
class EventRef {
 public:
  EventRef() = default;
  explicit EventRef(const Event* e) : e_(e) {
    if (e_) e_->Ref();
  }
  EventRef(const EventRef& o) : e_(o.e_) {
    if (e_) e_->Ref();
  }
  EventRef(EventRef&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  EventRef& operator=(EventRef o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~EventRef() {
    if (e_) e_->Unref();
  }

  const Event* get() const { return e_; }
  const Event* operator->() const { return e_; }
  const Event& operator*() const { return *e_; }
  explicit operator bool() const { return e_ != nullptr; }

 private:
  const Event* e_ = nullptr;
};

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_EVENT_H_
