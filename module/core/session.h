// Session: one open event stream or poll (session.cc, resume.cc). Loop
// thread only.
#ifndef EVSSE_CORE_SESSION_H_
#define EVSSE_CORE_SESSION_H_

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

struct HeartbeatTag;
struct StallTag;
struct AllTag;

// The list of all sessions has no deadline: its links need no timestamp.
template <>
struct Link<AllTag> {
  Link* prev = nullptr;
  Link* next = nullptr;
  bool linked() const { return prev != nullptr; }
};

// Session: one open event stream. It keeps, per subscribed topic, the last
// position it delivered; the topic's history is its queue, so a session that
// falls behind (replay, slow reader) catches up from the shared events
// without any per-session copy.
class Session final : public Link<HeartbeatTag>,
                      public Link<StallTag>,
                      public Link<AllTag>,
                      public ExchangeListener {
 public:
  // Backlog: events fetched from the backend for a resuming client, older
  // than what the topic's history holds; consumed before the history. The
  // page is shared with other sessions resuming the same topic.
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
  // SubList holds the session's Subs. Nearly every stream has one topic,
  // whose Sub lives inline: an idle subscriber then costs one heap block
  // less (see bench/README.md, idle memory). More go to one heap array.
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

  Session(StreamEndpoint* endpoint, Exchange* exchange, bool poll);
  ~Session() override;

  // Open starts the response (a stream's headers and first bytes go out at
  // once), then resolves where each topic resumes: at once in memory mode;
  // in backend mode after the topics are synced and older events fetched.
  // Subscriptions must be set up.
  void Open(std::optional<std::vector<pubsub::TopicCursor>> cursor);
  // Resolve continues resolution (a topic got synced).
  void Resolve();
  // Pump writes events after the cursor: all of them when live, one batch
  // when catching up.
  void Pump();
  void Heartbeat();
  void Close(CloseReason reason);
  // Continue moves this session's place in `t` to `epoch`, which continues
  // the topic's old epoch up to `end` (a failover, HubImpl::Continued);
  // false when it had events after `end`, which were lost.
  bool Continue(const Topic* t, uint64_t epoch, pubsub::Position end);

  void OnDrained() override;
  void OnClosed() override;

  SubList subs;
  bool closed() const { return closed_; }
  // FellBehindHistory: a topic's history dropped events this session has
  // not written yet (it cannot catch up any more).
  bool FellBehindHistory() const;
  bool catching_up() const { return catching_up_ || resume_ != nullptr; }
  StreamEndpoint* endpoint() const { return endpoint_; }
  // The requested topics the store served by others (Backend::Expand),
  // kept so that the session can be ended when that set grows.
  void set_expanded(std::vector<std::string> names) {
    if (!names.empty()) cold().expanded = std::move(names);
  }
  bool expanded_from(const std::string& name) const {
    return cold_ && std::find(cold_->expanded.begin(), cold_->expanded.end(),
                              name) != cold_->expanded.end();
  }

 private:
  // Collect appends up to `budget` bytes of events to the hub's scratch
  // buffer; returns false if the session lost events (fell out of history).
  bool Collect(size_t budget, size_t* events, bool* caught_up);
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
  void FetchWhereBlocked();
  bool HasPending() const;
  void AnswerPoll();
  void Finish();

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
  void Fetch(size_t k);
  void OnFetched(size_t k, Result<PageRef> r);
  void Ready();
  void StartStream();
  void BeginPoll();
  void AfterWrite(size_t events);
  static void OnLifetime(evutil_socket_t, short, void* arg);

  StreamEndpoint* endpoint_;
  Exchange* exchange_;
  OwnedEvent lifetime_timer_;
  bool closed_ = false;
  bool catching_up_ = true;
  bool poll_ = false;
  bool started_ = false;  // the stream's response has begun (StartStream)
  // State few streams need, allocated on first use: an idle subscriber's
  // Session then fits a smaller malloc block (see bench/README.md).
  struct Cold {
    std::string gap_json;               // gap object, "" when none
    std::shared_ptr<Session*> handle;   // weak target for fetch callbacks
    std::vector<std::string> expanded;  // see set_expanded
  };
  Cold& cold() {
    if (!cold_) cold_ = std::make_unique<Cold>();
    return *cold_;
  }
  bool has_gap() const { return cold_ && !cold_->gap_json.empty(); }

  std::unique_ptr<Cold> cold_;
  std::unique_ptr<ResumeState> resume_;  // until the resume is resolved
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_SESSION_H_
