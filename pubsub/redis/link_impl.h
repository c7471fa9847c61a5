// LinkImpl: the BackendLink of link.h. Its connection life, Publish and
// Fetch are in link.cc; watching topics (subscriptions, syncs, back-fills)
// is in sync.cc; probing the subscription is in probe.cc. Loop thread only.
#ifndef EVSSE_REDIS_LINK_IMPL_H_
#define EVSSE_REDIS_LINK_IMPL_H_

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "address.h"
#include "cluster/push_conn.h"
#include "conn.h"
#include "evsse/ext/link_base.h"
#include "link.h"
#include "reply.h"

namespace evsse::redis {

class LinkImpl final : public LinkBase<BackendLink, LinkEnv> {
 public:
  using Position = pubsub::Position;

  LinkImpl(LinkEnv env, RedisOptions options, Address address);
  ~LinkImpl() override;

  void Start(BackendSink* sink) override;
  LinkStats stats() const override;
  BackendStats backend_stats() const override;

  void Publish(const std::string& topic, std::string_view type,
               std::string_view data, PublishDone done) override;
  void Watch(const std::string& topic) override;
  void Unwatch(const std::string& topic) override;
  void Fetch(const std::string& topic, Position after, Position until,
             size_t limit, FetchDone done) override;

  // Resume (sharded): watch a topic that another shard's engine fed until
  // now (its slot moved here): once subscribed, it is back-filled from the
  // Hub's last position, as after a reconnect, then Synced.
  void Resume(const std::string& topic);

 private:
  static constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  static constexpr Position kEnd{kMax, kMax};
  // A back-fill reads the stream in pages of this many entries.
  static constexpr size_t kBackfillPage = 1000;
  // Live messages held per topic while it syncs; past this they are
  // dropped and read back from the stream instead.
  static constexpr size_t kMaxHeld = 10000;
  static constexpr size_t kChannelsPerCommand = 256;
  // The most entries one Fetch returns, whatever its limit (`more` is set).
  static constexpr size_t kMaxFetch = 100000;
  // The most events, and event bytes, one publish script call carries.
  static constexpr size_t kMaxBatchEvents = 256;
  static constexpr size_t kMaxBatchBytes = 1 << 20;
  // How often, at most, a node asks the script to trim a topic's stream by
  // age and renew its keys' time to live (each costs Redis about 2 µs per
  // call): every second, or a quarter of max_age or of the time to live
  // when that is shorter (upkeep_every_).
  static constexpr Millis kUpkeepEvery{1000};
  // Topics whose last upkeep time is remembered; past this the table is
  // cleared (every topic then gets its upkeep with its next event).
  static constexpr size_t kMaxUpkeepTopics = 65536;

  using Clock = std::chrono::steady_clock;

  enum class State { kIdle, kConnecting, kReady, kDown, kClosed };

  // Topic: one watched topic (or one whose UNSUBSCRIBE is unconfirmed).
  struct Topic {
    bool watched = false;
    bool subscribed = false;   // SUBSCRIBE sent on the current connection
    int awaiting = 0;          // (un)subscribe confirmations still to come
    bool live = false;         // synced: messages go straight to Deliver
    bool synced_once = false;  // since Watch: a re-sync back-fills
    bool overflow = false;     // held messages were dropped
    uint64_t gen = 0;  // bumped by every (un)watch and sync; stale replies
                       // carry an older one
    uint64_t last_epoch = 0;  // the newest position delivered or synced
    Position last;
    std::vector<std::pair<uint64_t, StoredEvent>> held;
  };

  struct PublishJob {
    std::string topic;
    std::string type;
    std::string data;
    PublishDone done;
    // wait_replicas: stored by the script, waiting for the WAIT.
    bool stored = false;
    uint64_t epoch = 0;
    Position id;
  };
  // PublishBatch: the events of one script call (publish.lua), in order.
  struct PublishBatch {
    std::vector<std::shared_ptr<PublishJob>> jobs;
    std::vector<bool> upkeep;  // per job: the script trims and renews TTLs
    bool eval = false;
    bool sent = false;  // handed to hiredis: a lost answer is kUnknown
    // wait_replicas: the attempt whose script stored events (an EVAL retry
    // is a new attempt), for the WAIT right behind it.
    int attempt = 0;
    int stored_attempt = -1;
  };
  // FetchFn: the decoded reply; `lost` when the connection went away
  // (the status says why).
  using FetchFn = std::function<void(Result<FetchReply> reply, bool lost)>;

  // Connection life.
  void Connect();
  void OpenData();
  void Handshake(Conn& conn, bool commands);
  void ConnReady(bool commands);
  void Fail(const std::string& error);
  void GoDown();
  void ScheduleReconnect();
  static void OnDownEvent(evutil_socket_t, short, void* arg);
  static void OnReconnectTimer(evutil_socket_t, short, void* arg);
  static void OnConnectTimer(evutil_socket_t, short, void* arg);
  static void OnFlushEvent(evutil_socket_t, short, void* arg);

  // Sentinel (sentinel.cc): discovery of the primary, and the watch for
  // +switch-master that stays on a sentinel while the link is up.
  bool sentinel_mode() const { return !sentinels_.empty(); }
  void AskSentinel();
  void SentinelAnswered(Address primary);
  void SentinelFailed(const std::string& error);
  void WatchSwitches();
  void Switched(const std::string& why);
  static void OnSentinelSub(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnSentinelEvent(evutil_socket_t, short, void* arg);
  static void OnSentinelTimer(evutil_socket_t, short, void* arg);
  // IsRoleError: an answer that says this server is no longer the primary
  // (READONLY, MASTERDOWN): in sentinel mode, the link rediscovers.
  void CheckRoleError(const redisReply* r);
  // Scripts.
  static void OnPublishEvent(evutil_socket_t, short, void* arg);
  void FlushPublishes();
  bool Upkeep(const std::string& topic, Clock::time_point now);
  void SendPublish(std::shared_ptr<PublishBatch> batch);
  void WaitReplicas(std::shared_ptr<PublishBatch> batch, int attempt);
  void RunFetch(const std::string& topic, Position after, Position until,
                size_t count, FetchFn fn, bool eval = false);

  // Topics.
  std::string Key(const std::string& topic, char kind) const;
  bool TopicOf(std::string_view channel, std::string* topic) const;
  bool SendSubscription(std::string_view verb,
                        const std::vector<std::string>& channels);
  static void OnSubReply(redisAsyncContext* ac, void* reply, void* privdata);
  // OnSubArray: one pub/sub array of the subscriber connection (either
  // kind); `hiredis`: it came through Conn, whose timeout counts
  // confirmations.
  void OnSubArray(const redisReply* r, bool hiredis);
  // Sharded: SSUBSCRIBE / SUNSUBSCRIBE, one channel per request.
  bool SendShardSubscription(bool subscribe, const std::string& channel);
  void Misrouted(const std::string& name, const std::string& why);
  bool sharded() const { return env_.sharded; }
  void OnConfirm(const std::string& name, bool subscribed);
  void OnMessage(const std::string& name, std::string_view payload);
  void BeginSync(const std::string& name);
  void Backfill(const std::string& name, uint64_t gen, uint64_t known_epoch,
                Position after, Position from);
  void FinishSync(const std::string& name, uint64_t epoch, Position from);
  void SyncFailed(const std::string& name, const Status& status);
  Topic* Current(const std::string& name, uint64_t gen, uint64_t conn_gen);
  // DeliverOne hands the Hub an event of the stream in `epoch` (what the
  // topic's sync tracks), labelled with the epoch it was written in
  // (`written_in`, 0: `epoch`; see WrittenEpoch).
  void DeliverOne(const std::string& name, Topic& t, uint64_t epoch,
                  const StoredEvent& event, uint64_t written_in = 0);
  void MaybeReportUp();

  // Probing the subscription (probe.cc).
  bool probing() const { return options_.probe_interval.count() > 0; }
  std::string NewProbeChannel();
  void ProbeConfirmed();
  void StopProbing();
  void ProbeTick();
  void ArmProbe(Clock::duration after);
  void SendProbe();
  void OnProbe(std::string_view payload);
  static void OnProbeTimer(evutil_socket_t, short, void* arg);

  void OnClose() override;
  void Defer(std::function<void()> fn);
  std::string NewEpoch();
  std::string DownMessage() const;

  RedisOptions options_;
  Address address_;  // the primary in use (found by a sentinel, or given)
  // Sentinel: the sentinels, the next one to ask, how many this discovery
  // asked, and whether the current sentinel conversation is a discovery
  // (state kConnecting) or the watch of a link that is up.
  std::vector<Address> sentinels_;
  size_t sentinel_next_ = 0;
  size_t sentinel_asked_ = 0;
  uint64_t sentinel_gen_ = 0;  // bumped by every sentinel conversation
  bool sentinel_watching_ = false;
  std::string sentinel_errors_;
  std::string run_id_;      // INFO server's run_id of the primary in use
  std::string max_events_;  // ARGV of the publish script
  std::string max_age_ms_;
  std::string ttl_ms_;
  std::string wait_replicas_;  // WAIT's arguments
  std::string wait_timeout_ms_;
  BackendSink* sink_ = nullptr;
  State state_ = State::kIdle;
  uint64_t conn_gen_ = 0;  // bumped by every connect
  bool cmd_ready_ = false;
  bool sub_ready_ = false;
  bool ever_ready_ = false;
  bool reported_up_ = false;
  int attempt_ = 0;
  std::string publish_sha_;
  std::string fetch_sha_;
  std::string last_error_;
  LinkStats stats_;
  std::unordered_map<std::string, Topic> topics_;
  Completions completions_;
  // Publishes of this loop turn, sent together when the turn's events have
  // run (publish_event_), and when each topic last had its upkeep.
  std::vector<std::shared_ptr<PublishJob>> publish_queue_;
  std::unordered_map<std::string, Clock::time_point> upkeep_at_;
  Millis upkeep_every_{kUpkeepEvery};
  std::mt19937_64 rng_;
  event* down_event_;
  event* flush_event_;
  event* publish_event_;
  event* reconnect_timer_;
  event* connect_timer_;
  // Probes: the channel (new on every connect, so that a stale connection
  // Redis still holds does not answer for the new one), whether its
  // SUBSCRIBE is confirmed, the probe in flight, and when the subscriber
  // connection last heard anything.
  std::string probe_channel_;
  bool probe_subscribed_ = false;
  bool probe_pending_ = false;
  bool probe_answered_ = false;
  uint64_t probe_seq_ = 0;
  Clock::time_point probe_sent_at_;
  Clock::time_point probe_answered_at_;
  Clock::time_point last_heard_;
  event* probe_timer_;
  event* sentinel_event_;
  event* sentinel_timer_;
  Conn sen_;  // a sentinel: discovery, then SUBSCRIBE +switch-master
  Conn cmd_;  // scripts and reads
  Conn sub_;  // SUBSCRIBE and UNSUBSCRIBE only
  // Sharded: the subscriber connection instead of sub_ (SSUBSCRIBE, and
  // SUBSCRIBE for the probe channel).
  std::unique_ptr<cluster::PushConn> push_;
};

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_LINK_IMPL_H_
