// Intrusive lists and a deadline list: one libevent timer serving many
// sessions whose deadlines are "last touched + a fixed interval", so an idle
// session costs two pointers and a timestamp per list instead of a timer.
#ifndef EVSSE_SRC_LISTS_H_
#define EVSSE_SRC_LISTS_H_

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>

#include "timer.h"

namespace evsse::internal {

inline int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

template <class Tag>
struct Link {
  Link* prev = nullptr;
  Link* next = nullptr;
  int64_t since = 0;  // when the element was last (re)queued
  bool linked() const { return prev != nullptr; }
};

// List of T (which derives from Link<Tag>), O(1) push and remove.
template <class T, class Tag>
class List {
 public:
  List() { head_.prev = head_.next = &head_; }
  List(const List&) = delete;
  List& operator=(const List&) = delete;

  bool empty() const { return head_.next == &head_; }
  size_t size() const { return size_; }
  T* front() const { return empty() ? nullptr : static_cast<T*>(head_.next); }
  static bool Contains(const T* t) {
    return static_cast<const Link<Tag>*>(t)->linked();
  }
  void PushBack(T* t) {
    Link<Tag>* n = t;
    n->prev = head_.prev;
    n->next = &head_;
    head_.prev->next = n;
    head_.prev = n;
    ++size_;
  }
  // ForEach calls fn(T*) for every element, front first; fn must not
  // change the list.
  template <class Fn>
  void ForEach(Fn&& fn) const {
    for (Link<Tag>* n = head_.next; n != &head_; n = n->next)
      fn(static_cast<T*>(n));
  }
  void Remove(T* t) {
    Link<Tag>* n = t;
    if (!n->linked()) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --size_;
  }

 private:
  Link<Tag> head_;
  size_t size_ = 0;
};

// DeadlineList calls `expire(t)` once `interval` has passed since t was last
// Touch()ed. Elements are kept in touch order, so the head is always the next
// to expire and one timer suffices. `expire` runs with t already removed; it
// may Touch it again or remove others.
template <class T, class Tag>
class DeadlineList {
 public:
  DeadlineList(event_base* base, int64_t interval_ms,
               std::function<void(T*)> expire)
      : interval_ms_(interval_ms), expire_(std::move(expire)) {
    timer_ = OwnedEvent(base, &DeadlineList::OnTimer, this);
  }
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  bool enabled() const { return interval_ms_ > 0; }
  size_t size() const { return list_.size(); }

  void Touch(T* t, int64_t now) {
    if (!enabled()) return;
    list_.Remove(t);
    static_cast<Link<Tag>*>(t)->since = now;
    list_.PushBack(t);
    if (!timer_.pending()) Arm(now);
  }
  // Add queues t only if it is not queued yet (keeps the older time).
  void Add(T* t, int64_t now) {
    if (enabled() && !List<T, Tag>::Contains(t)) Touch(t, now);
  }
  void Remove(T* t) { list_.Remove(t); }

 private:
  static void OnTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<DeadlineList*>(arg);
    int64_t now = NowMs();
    while (T* t = self->list_.front()) {
      if (static_cast<Link<Tag>*>(t)->since + self->interval_ms_ > now) break;
      self->list_.Remove(t);
      self->expire_(t);
    }
    if (!self->list_.empty() && !self->timer_.pending()) self->Arm(now);
  }
  void Arm(int64_t now) {
    T* t = list_.front();
    timer_.AfterMs(static_cast<Link<Tag>*>(t)->since + interval_ms_ - now);
  }

  const int64_t interval_ms_;
  std::function<void(T*)> expire_;
  List<T, Tag> list_;
  OwnedEvent timer_;
};

}  // namespace evsse::internal

#endif  // EVSSE_SRC_LISTS_H_
