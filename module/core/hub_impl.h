// HubImpl: the broker of one loop, behind evsse::Hub (hub.cc). Loop thread
// only, except where marked.
#ifndef EVSSE_CORE_HUB_IMPL_H_
#define EVSSE_CORE_HUB_IMPL_H_

#include <event2/event.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
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
#include "publish_endpoint.h"
#include "stream_endpoint.h"
#include "subscription.h"
#include "timer.h"
#include "topic.h"

namespace evsse::internal {

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
  void Continued(const std::string& topic, uint64_t old_epoch, uint64_t epoch,
                 pubsub::Position end) override;
  pubsub::Position LastPosition(const std::string& topic,
                                uint64_t* epoch) override;
  void LinkChanged(bool up) override;
  void Restarted(const std::string& topic, uint64_t epoch,
                 pubsub::Position from) override;
  void ExpansionChanged(const std::string& topic) override;
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

  void AddSession(Subscription* s);
  // Subscribe adds the session's last (empty) Sub for `t`; the first
  // subscriber of a topic starts the backend's feed for it.
  void Subscribe(Subscription* s, Topic* t);
  // Retire: the session is closed; it is unlinked and deleted later, never
  // inside the call that closed it.
  void Retire(Subscription* s);
  // NoteFreed: a stall or slow-consumer close is about to free `bytes` of
  // queued output. glibc keeps freed heap that later allocations (the
  // history) pin, so RSS would stay at its peak after the closes; once
  // kTrimAfterBytes were freed, a timer (kTrimDelayMs, which also batches
  // many closes) returns free heap pages to the system (malloc_trim).
  void NoteFreed(size_t bytes);

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
  static void OnTrim(evutil_socket_t, short, void* arg);
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

  List<Subscription, AllTag> sessions_;
  std::vector<Subscription*> graveyard_;
  OwnedEvent reap_event_;
  OwnedEvent trim_timer_;
  size_t freed_since_trim_ = 0;
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

#endif  // EVSSE_CORE_HUB_IMPL_H_
