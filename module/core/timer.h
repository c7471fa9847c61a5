// OwnedEvent: a libevent event owned by one object and freed with it, for
// timers ("in N ms") and deferred calls ("on the next loop turn"), with the
// one conversion from milliseconds to a timeval. Loop thread only.
#ifndef EVSSE_SRC_TIMER_H_
#define EVSSE_SRC_TIMER_H_

#include <event2/event.h>

#include <cstdint>
#include <utility>

namespace evsse::internal {

inline timeval MsToTimeval(int64_t ms) {
  if (ms < 0) ms = 0;
  return timeval{static_cast<time_t>(ms / 1000),
                 static_cast<suseconds_t>((ms % 1000) * 1000)};
}

class OwnedEvent {
 public:
  OwnedEvent() = default;
  // A timer or deferred call (fd -1); `flags` may add EV_PERSIST. An fd
  // with EV_READ makes it a read event.
  OwnedEvent(event_base* base, event_callback_fn fn, void* arg, short flags = 0,
             evutil_socket_t fd = -1)
      : ev_(event_new(base, fd, flags, fn, arg)) {}
  ~OwnedEvent() {
    if (ev_) event_free(ev_);
  }
  OwnedEvent(OwnedEvent&& o) noexcept : ev_(std::exchange(o.ev_, nullptr)) {}
  OwnedEvent& operator=(OwnedEvent&& o) noexcept {
    std::swap(ev_, o.ev_);
    return *this;
  }
  OwnedEvent(const OwnedEvent&) = delete;
  OwnedEvent& operator=(const OwnedEvent&) = delete;

  explicit operator bool() const { return ev_ != nullptr; }
  // AfterMs (re)arms the timer to fire in `ms` milliseconds (AfterUs: in
  // microseconds); Add arms it with no timeout (a read event).
  void AfterMs(int64_t ms) {
    timeval tv = MsToTimeval(ms);
    event_add(ev_, &tv);
  }
  void AfterUs(int64_t us) {
    if (us < 0) us = 0;
    timeval tv{static_cast<time_t>(us / 1000000),
               static_cast<suseconds_t>(us % 1000000)};
    event_add(ev_, &tv);
  }
  void Add() { event_add(ev_, nullptr); }
  // Activate runs the callback on the next loop turn, once.
  void Activate() { event_active(ev_, EV_TIMEOUT, 0); }
  void Cancel() { event_del(ev_); }
  bool pending() const {
    return ev_ && event_pending(ev_, EV_TIMEOUT, nullptr);
  }

 private:
  event* ev_ = nullptr;
};

}  // namespace evsse::internal

#endif  // EVSSE_SRC_TIMER_H_
