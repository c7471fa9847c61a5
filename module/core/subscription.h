// Subscription: what an event stream (Session, session.h) and a poll
// (PollSession, poll_session.h) share: the request's topics and its place in
// each, where it resumes (resume.cc), the merge of its topics in position
// order, its timer and its end (subscription.cc). The Hub holds every
// subscriber as one. Loop thread only.
#ifndef EVSSE_CORE_SUBSCRIPTION_H_
#define EVSSE_CORE_SUBSCRIPTION_H_

#include <event2/event.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evsse/ext/exchange.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/pubsub/event.h"
#include "fetch_share.h"
#include "lists.h"
#include "timer.h"
#include "topic.h"

namespace evsse::internal {

class StreamEndpoint;

struct AllTag;

// The list of all subscribers has no deadline: its links need no timestamp.
template <>
struct Link<AllTag> {
  Link* prev = nullptr;
  Link* next = nullptr;
  bool linked() const { return prev != nullptr; }
};

enum class CloseReason {
  kPeerClosed,    // the connection went away
  kSlowConsumer,  // past max_queued_bytes, or fell out of history
  kStall,         // output did not drain within write_stall_timeout
  kLifetime,      // max_lifetime reached: ended cleanly
  kShutdown,      // Hub::Shutdown: final retry hint, ended cleanly
  kHubGone,       // the Hub is being destroyed
  kUnavailable,   // the backend could not replay: ended, the client retries
  kRegrouped,     // a requested topic is served by more store topics now
                  // (Kafka partitions added): ended cleanly, it reconnects
};

// Subscription keeps, per subscribed topic, the last position it delivered;
// the topic's history is its queue, so a subscriber that falls behind
// (replay, slow reader, a poll's next request) catches up from the shared
// events without any per-subscriber copy. What the transport does with the
// events is the subclass's: Pump, Close, and the hooks below.
class Subscription : public Link<AllTag>, public ExchangeListener {
 public:
  // Backlog: events fetched from the backend for a resuming client, older
  // than what the topic's history holds; consumed before the history. The
  // page is shared with other subscribers resuming the same topic.
  struct Backlog {
    PageRef page;
    size_t next = 0;              // the page's next event to write
    size_t end = 0;               // the page's events up to `until`
    pubsub::Position next_after;  // where the next page starts
    pubsub::Position until;       // the history is complete after this
    bool more = true;
    bool fetching = false;
    bool empty() const { return next == end; }
    const pubsub::EventRef& front() const { return page->events[next]; }
  };
  struct Sub {
    Topic* topic = nullptr;
    uint64_t epoch = 0;
    pubsub::Position pos;  // last delivered
    uint32_t slot = 0;     // index in topic->subscribers
    std::unique_ptr<Backlog> backlog;
  };
  // SubList holds the subscription's Subs. Nearly every stream has one
  // topic, whose Sub lives inline: an idle subscriber then costs one heap
  // block less (see bench/README.md, idle memory). More go to one heap array.
  class SubList {
   public:
    SubList() = default;
    SubList(const SubList&) = delete;
    SubList& operator=(const SubList&) = delete;
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    Sub* begin() { return data(); }
    Sub* end() { return data() + size_; }
    const Sub* begin() const { return data(); }
    const Sub* end() const { return data() + size_; }
    Sub& operator[](size_t i) { return data()[i]; }
    const Sub& operator[](size_t i) const { return data()[i]; }
    Sub& back() { return data()[size_ - 1]; }
    // emplace_back appends a default Sub (it may move the others).
    Sub& emplace_back() {
      if (size_ == capacity_) {
        auto grown = std::make_unique<Sub[]>(size_t{capacity_} * 2);
        for (uint32_t i = 0; i < size_; ++i) grown[i] = std::move(data()[i]);
        more_ = std::move(grown);
        capacity_ *= 2;
      }
      return data()[size_++];
    }

   private:
    Sub* data() { return more_ ? more_.get() : &one_; }
    const Sub* data() const { return more_ ? more_.get() : &one_; }
    Sub one_;
    std::unique_ptr<Sub[]> more_;
    uint32_t size_ = 0;
    uint32_t capacity_ = 1;
  };

  Subscription(StreamEndpoint* endpoint, Exchange* exchange);
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() override = default;

  // Open starts the response where the transport does so at once (a
  // stream's headers and first bytes, see Opening), then resolves where
  // each topic resumes: at once in memory mode; in backend mode after the
  // topics are synced and older events fetched. Subscriptions must be set
  // up.
  void Open(std::optional<std::vector<pubsub::TopicCursor>> cursor);
  // Resolve continues resolution (a topic got synced).
  void Resolve();
  // Pump delivers what is pending after the cursor (the Hub calls it on
  // every fan-out to a subscriber that is not catching up).
  virtual void Pump() = 0;
  virtual void Close(CloseReason reason) = 0;
  // Continue moves this subscriber's place in `t` to `epoch`, which
  // continues the topic's old epoch up to `end` (a failover,
  // HubImpl::Continued); false when it had events after `end`, which were
  // lost.
  bool Continue(const Topic* t, uint64_t epoch, pubsub::Position end);

  void OnClosed() override;

  SubList subs;
  bool closed() const { return closed_; }
  // FellBehindHistory: a topic's history dropped events this subscriber has
  // not delivered yet (it cannot catch up any more).
  bool FellBehindHistory() const;
  bool catching_up() const { return catching_up_ || resume_ != nullptr; }
  StreamEndpoint* endpoint() const { return endpoint_; }
  // The requested topics the store served by others (Backend::Expand),
  // kept so that the subscriber can be ended when that set grows.
  void set_expanded(std::vector<std::string> names) {
    if (!names.empty()) cold().expanded = std::move(names);
  }
  bool expanded_from(const std::string& name) const {
    return cold_ && std::find(cold_->expanded.begin(), cold_->expanded.end(),
                              name) != cold_->expanded.end();
  }

 protected:
  // Opening: Open is about to resolve the resume; `wait_for_tail` says a
  // fresh subscription must first wait for its topics to be synced.
  virtual void Opening(bool wait_for_tail) = 0;
  // Resumed: every topic's start is known (gap_json holds the gap, if any);
  // deliver from there.
  virtual void Resumed() = 0;
  // OnTimer: the timer set by ArmTimer fired.
  virtual void OnTimer() = 0;

  // Walk calls fn(event, whole) for each event after the cursor, merged in
  // position order, advancing the cursor, until `budget` bytes or
  // `max_events`; `whole` says the event's own id is the cursor (one
  // topic). Returns false if events were lost (fell out of history).
  // Walk stops early (not caught up) at a backlog whose next page is still
  // being fetched.
  template <class Fn>
  bool Walk(size_t budget, size_t max_events, size_t* events, bool* caught_up,
            Fn&& fn);
  void AppendCursor(std::string& out) const;
  // Fetch asks the store for topic k's next backlog page.
  void Fetch(size_t k);
  void ArmTimer(int64_t ms);
  // Finish ends the subscription once its response is complete: the Hub
  // frees it on a later loop turn.
  void Finish();
  // LogClosed logs the reason at debug level.
  void LogClosed(CloseReason reason);
  // resolving: where a topic starts is not known yet (resume.cc).
  bool resolving() const { return resume_ != nullptr; }

  StreamEndpoint* endpoint_;
  Exchange* exchange_;
  OwnedEvent timer_;  // a stream's max_lifetime, a long poll's timeout
  bool closed_ = false;
  bool catching_up_ = true;
  // The response has begun: a stream's headers went out (Session), which in
  // backend mode may wait for the resume; a poll's one answer is its whole
  // response and leaves this false. Kept here, in the padding after the
  // flags above: as a member of Session it would take 8 bytes more, past
  // the 184-byte block asserted in session.cc.
  bool started_ = false;
  // State few subscribers need, allocated on first use: an idle
  // subscriber's Session then fits a smaller malloc block (see
  // bench/README.md).
  struct Cold {
    std::string gap_json;                   // gap object, "" when none
    std::shared_ptr<Subscription*> handle;  // weak target for fetches
    std::vector<std::string> expanded;      // see set_expanded
  };
  Cold& cold() {
    if (!cold_) cold_ = std::make_unique<Cold>();
    return *cold_;
  }
  bool has_gap() const { return cold_ && !cold_->gap_json.empty(); }

  std::unique_ptr<Cold> cold_;

 private:
  // Resume (resume.cc).
  struct ResumeState {
    std::optional<std::vector<pubsub::TopicCursor>> cursor;
    std::vector<bool> resolved;
    std::vector<std::string> gapped;
    bool unknown = false;
    size_t fetching = 0;  // first pages still to come
  };
  void ResolveTopic(size_t k);
  void Gap(size_t k, bool unknown);
  void OnFetched(size_t k, Result<PageRef> r);
  void Ready();
  static void OnTimerEvent(evutil_socket_t, short, void* arg);

  std::unique_ptr<ResumeState> resume_;  // until the resume is resolved
};

template <class Fn>
bool Subscription::Walk(size_t budget, size_t max_events, size_t* events,
                        bool* caught_up, Fn&& fn) {
  size_t bytes = 0;
  *events = 0;
  const size_t n = subs.size();
  for (const Sub& s : subs) {
    // An event after our position was dropped before we sent it.
    if (!s.backlog && s.pos < s.topic->history.evicted_up_to()) return false;
  }
  if (n == 1 && !subs[0].backlog) {
    // The common case: one topic, straight from its history.
    Sub& s = subs[0];
    const pubsub::TopicHistory& h = s.topic->history;
    size_t i = h.FirstAfter(s.pos);
    for (; i < h.size(); ++i) {
      if ((bytes >= budget || *events >= max_events) && *events > 0) break;
      const pubsub::Event& e = *h[i];
      s.pos = e.position;
      s.epoch = e.epoch;  // a topic's first event may create its epoch
      fn(e, true);
      bytes += e.wire.size();
      ++*events;
    }
    *caught_up = i == h.size();
    return true;
  }
  // Several sources: merge by position. A backlog (events fetched for a
  // resume) comes before its topic's history; one whose next page is still
  // being fetched holds the merge, so order is never broken.
  size_t idx[64];
  for (size_t k = 0; k < n; ++k)
    idx[k] =
        subs[k].backlog ? 0 : subs[k].topic->history.FirstAfter(subs[k].pos);
  for (;;) {
    size_t best = n;
    const pubsub::Event* head_of_best = nullptr;
    bool from_backlog = false;
    for (size_t k = 0; k < n; ++k) {
      Sub& s = subs[k];
      const pubsub::TopicHistory& h = s.topic->history;
      const pubsub::Event* head = nullptr;
      bool backlog = false;
      if (s.backlog) {
        if (!s.backlog->empty()) {
          head = s.backlog->front().get();
          backlog = true;
        } else if (s.backlog->more) {
          *caught_up = false;
          return true;
        } else {
          s.backlog.reset();
          if (s.pos < h.evicted_up_to()) return false;
          idx[k] = h.FirstAfter(s.pos);
        }
      }
      if (!head && idx[k] < h.size()) head = h[idx[k]].get();
      if (head && (!head_of_best || head->position < head_of_best->position)) {
        best = k;
        head_of_best = head;
        from_backlog = backlog;
      }
    }
    *caught_up = best == n;
    if (*caught_up) return true;
    if ((bytes >= budget || *events >= max_events) && *events > 0) return true;
    Sub& s = subs[best];
    if (from_backlog) {
      ++s.backlog->next;  // the page keeps the event alive while fn runs
    } else {
      ++idx[best];
    }
    s.pos = head_of_best->position;
    s.epoch = head_of_best->epoch;
    fn(*head_of_best, n == 1);
    bytes +=
        n == 1 ? head_of_best->wire.size() : head_of_best->body_size + n * 16;
    ++*events;
  }
}

}  // namespace evsse::internal

#endif  // EVSSE_CORE_SUBSCRIPTION_H_
