// Internals of the Hub: topics, sessions, endpoints. Loop thread only, except
// where marked.
#ifndef EVSSE_SRC_HUB_IMPL_H_
#define EVSSE_SRC_HUB_IMPL_H_

#include <event2/event.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/ext/exchange.h"
#include "evsse/hub.h"
#include "evsse/options.h"
#include "evsse/pubsub/bus.h"
#include "evsse/pubsub/history.h"
#include "fetch_share.h"
#include "lists.h"
#include "timer.h"

namespace evsse::internal {

class Session;
class StreamEndpoint;

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
  std::vector<Session*> subscribers;
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
  std::vector<Session*> waiting;  // sessions waiting for the first sync
};

enum class CloseReason {
  kPeerClosed,    // the connection went away
  kSlowConsumer,  // past max_queued_bytes, or fell out of history
  kStall,         // output did not drain within write_stall_timeout
  kLifetime,      // max_lifetime reached: ended cleanly
  kShutdown,      // Hub::Shutdown: final retry hint, ended cleanly
  kHubGone,       // the Hub is being destroyed
  kUnavailable,   // the backend could not replay: ended, the client retries
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

  void OnDrained() override;
  void OnClosed() override;

  SubList subs;
  bool closed() const { return closed_; }
  // FellBehindHistory: a topic's history dropped events this session has
  // not written yet (it cannot catch up any more).
  bool FellBehindHistory() const;
  bool catching_up() const { return catching_up_ || resume_ != nullptr; }
  StreamEndpoint* endpoint() const { return endpoint_; }

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
    std::string gap_json;              // gap object, "" when none
    std::shared_ptr<Session*> handle;  // weak target for fetch callbacks
  };
  Cold& cold() {
    if (!cold_) cold_ = std::make_unique<Cold>();
    return *cold_;
  }
  bool has_gap() const { return cold_ && !cold_->gap_json.empty(); }

  std::unique_ptr<Cold> cold_;
  std::unique_ptr<ResumeState> resume_;  // until the resume is resolved
};

class HubImpl;

// StreamEndpoint: a mounted subscribe endpoint (stream_endpoint.cc).
class StreamEndpoint final : public Handler {
 public:
  StreamEndpoint(HubImpl* hub, StreamOptions options);
  void Handle(Exchange* exchange) override;

  HubImpl* hub() const { return hub_; }
  const StreamOptions& options() const { return options_; }
  DeadlineList<Session, HeartbeatTag>& heartbeats() { return heartbeats_; }
  DeadlineList<Session, StallTag>& stalls() { return stalls_; }
  // JitteredRetry returns retry + uniform(0, retry_jitter) in ms.
  uint64_t JitteredRetry();
  int64_t JitteredLifetime();
  // Shed answers a request refused by a limit or while draining.
  void Shed(Exchange* exchange, const char* reason);
  // AddCommonHeaders adds the CORS headers for `origin` (if allowed).
  void AddCorsHeaders(Exchange* exchange, const char* origin);

 private:
  bool CheckCors(Exchange* exchange, const char** origin);
  void Preflight(Exchange* exchange);
  void Reject(Exchange* exchange, int status, const char* reason,
              const std::string& message);

  HubImpl* hub_;
  StreamOptions options_;
  DeadlineList<Session, HeartbeatTag> heartbeats_;
  DeadlineList<Session, StallTag> stalls_;
  std::minstd_rand rng_;
};

// PublishEndpoint: a mounted HTTP publish endpoint (publish_endpoint.cc).
class PublishEndpoint final : public Handler {
 public:
  PublishEndpoint(HubImpl* hub, PublishOptions options);
  void Handle(Exchange* exchange) override;

 private:
  HubImpl* hub_;
  PublishOptions options_;
};

// HubImpl: the broker of one loop.
class HubImpl : public pubsub::Bus::Listener, public BackendSink {
 public:
  HubImpl(event_base* base, HubOptions options);
  ~HubImpl() override;

  // Any thread.
  Status Publish(std::string_view topic, Message message, PublishCallback done);
  void OnBusEvent(const pubsub::EventRef& event, void* token) override;

  // Loop thread.
  event_base* base() const { return base_; }
  const HubOptions& options() const { return options_; }
  uint64_t epoch() const { return bus_->epoch(); }
  HubStats& stats() { return stats_; }
  HubStats Stats() const;  // with the computed fields
  bool draining() const { return draining_; }
  int wake_error() const { return wake_error_; }
  evbuffer* scratch() const { return scratch_; }
  std::string& id_scratch() { return id_scratch_; }
  std::string& frame_scratch() { return frame_scratch_; }
  // Tail is where a fresh subscription of `t` starts: after the newest
  // event this node has, or the stream tail it synced at. Floor is where
  // the topic's history becomes complete: a cursor below it has expired
  // (memory mode) or needs a fetch (backend mode).
  pubsub::Position Tail(const Topic* t) const {
    return std::max(t->history.last(), t->synced_from);
  }
  pubsub::Position Floor(const Topic* t) const {
    return std::max(t->history.evicted_up_to(), t->synced_from);
  }
  Backend* backend() const { return backend_.load(); }
  void AttachBackend(Backend* backend);
  // Pages fetched for resuming sessions, shared between them.
  FetchShare& fetch_share() { return *fetch_share_; }
  // MakeEvent encodes a stored event of `topic` once, for every subscriber.
  static pubsub::EventRef MakeEvent(const std::string& topic, uint64_t epoch,
                                    const StoredEvent& e);

  // BackendSink.
  void Deliver(const std::string& topic, uint64_t epoch,
               const StoredEvent& event) override;
  void Synced(const std::string& topic, uint64_t epoch,
              pubsub::Position from) override;
  pubsub::Position LastPosition(const std::string& topic,
                                uint64_t* epoch) override;
  void LinkChanged(bool up) override;
  bool link_up() const { return link_up_; }

  // FindTopic returns the topic or nullptr; GetTopic creates it, evicting
  // the least recently used idle topic when max_topics is reached (nullptr
  // when every topic is in use). A topic GetTopic returns must be used at
  // once (an event appended, a subscriber added) or given to Release; a
  // later GetTopic may evict an idle one.
  Topic* FindTopic(std::string_view name);
  Topic* GetTopic(const std::string& name);
  // Retouch files `t` where its state says (idle, busy or no list) after a
  // change, at the back when `used`; a topic with no history and no use is
  // forgotten (deleted): the caller must not touch `t` after a false.
  bool Retouch(Topic* t, bool used);
  void Release(Topic* t) { (void)Retouch(t, false); }
  // TrimExpired drops the events of `t` older than history_max_age.
  void TrimExpired(Topic* t);
  // Position of the newest event ever published on the bus.
  pubsub::Position bus_last() const { return bus_->last(); }

  void AddSession(Session* s);
  // Subscribe adds the session's last (empty) Sub for `t`; the first
  // subscriber of a topic starts the backend's feed for it.
  void Subscribe(Session* s, Topic* t);
  // Retire: the session is closed; it is unlinked and deleted later, never
  // inside the call that closed it.
  void Retire(Session* s);

  // Authorize runs an auth hook; an exception thrown by the hook becomes a
  // 403 (it must not cross a libevent callback).
  AuthDecision Authorize(const AuthHook& hook, const Request& request);

  void Shutdown(Millis deadline, std::function<void()> done);
  void Log(LogLevel level, const std::string& message);
  bool LogEnabled(LogLevel level) const {
    return options_.log && level >= options_.log_level;
  }

  std::vector<std::unique_ptr<Handler>> endpoints;

 private:
  struct Pending {
    pubsub::EventRef event;  // memory mode
    PublishCallback* done;   // owned; only on the origin hub
    // Backend mode: the request, published from the loop thread.
    std::string topic;
    Message message;
    Status refusal = Status::Ok();  // why the loop refused `event`
  };

  static void OnWake(evutil_socket_t fd, short, void* arg);
  static void OnReap(evutil_socket_t, short, void* arg);
  static void OnSweep(evutil_socket_t, short, void* arg);
  static void OnWave(evutil_socket_t, short, void* arg);
  static void OnShutdownDone(evutil_socket_t, short, void* arg);
  static void OnFlush(evutil_socket_t, short, void* arg);
  static void OnFlushTimer(evutil_socket_t, short, void* arg);
  void ProcessInbox();
  void PublishToBackend(Pending& p);
  // Refuse answers `p`'s publisher with `why` and drops its event.
  void Refuse(Pending& p, Status why);
  void ResetTopic(Topic* t, uint64_t epoch);
  // MarkDirty: `now` is NowUs() of the arrival (0 without coalescing).
  void MarkDirty(Topic* t, int64_t now);
  void Flush(bool force);
  void FanOut(Topic* t);
  static bool InUse(const Topic* t) {
    return !t->subscribers.empty() || t->unsent > 0 || t->watched;
  }
  // EvictFor makes room for `bytes` more history within history_max_bytes:
  // idle topics go first, least recently used first, then events of busy
  // topics that every subscriber already has. False: the rest is owed to
  // live subscribers.
  bool EvictFor(size_t bytes);
  bool EvictDelivered(size_t bytes);
  void EvictTopic(Topic* t);
  void Forget(Topic* t);
  // TopicBytes is what a topic itself accounts for in the budget: the Topic,
  // its table entry and its name.
  static size_t TopicBytes(std::string_view name) {
    return sizeof(Topic) + 64 + (name.size() > 15 ? name.size() + 1 : 0);
  }
  bool OverBudget(size_t more) const {
    return options_.history_max_bytes != 0 &&
           meter_.bytes + more > options_.history_max_bytes;
  }
  void MaybeFinishShutdown();

  event_base* base_;
  HubOptions options_;
  std::shared_ptr<pubsub::Bus> bus_;
  HubStats stats_;

  // Inbox: filled by any thread (under the bus lock), drained on the loop.
  std::mutex inbox_mu_;
  std::vector<Pending> inbox_;
  int wake_fd_ = -1;
  int wake_error_ = 0;  // errno of a failed eventfd (Create then fails)
  OwnedEvent wake_event_;
  std::vector<Pending> batch_;  // loop-owned, reused

  pubsub::HistoryMeter meter_;  // before topics_: their histories report
  // Keyed by a view of the topic's own name.
  std::unordered_map<std::string_view, std::unique_ptr<Topic>> topics_;
  List<Topic, TopicTag> idle_;
  List<Topic, TopicTag> busy_;
  std::vector<Topic*> dirty_topics_;
  pubsub::Position forgotten_up_to_;  // newest position of dropped topics

  List<Session, AllTag> sessions_;
  std::vector<Session*> graveyard_;
  OwnedEvent reap_event_;
  OwnedEvent sweep_timer_;

  bool draining_ = false;
  std::vector<std::function<void()>> shutdown_done_;
  OwnedEvent wave_timer_;
  OwnedEvent done_event_;
  size_t wave_size_ = 0;
  int64_t wave_interval_ms_ = 0;

  std::atomic<Backend*> backend_{nullptr};
  bool link_up_ = false;
  std::unique_ptr<FetchShare> fetch_share_;
  OwnedEvent flush_event_;  // batches backend deliveries
  OwnedEvent flush_timer_;  // fans out coalesced topics

  evbuffer* scratch_ = nullptr;
  std::string id_scratch_;
  std::string frame_scratch_;
  bool closing_ = false;  // the Hub is being destroyed
};

}  // namespace evsse::internal

#endif  // EVSSE_SRC_HUB_IMPL_H_
