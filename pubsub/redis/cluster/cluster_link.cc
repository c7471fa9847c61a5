#include "cluster_link.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../conn.h"
#include "../link_impl.h"
#include "slots.h"

namespace evsse::redis::cluster {
namespace {

// The most redirections (MOVED, ASK, TRYAGAIN) one command follows.
constexpr int kMaxRedirects = 8;
// ASK and TRYAGAIN: the slot is being migrated; the command is sent again
// to the same primary after kRetryDelay, doubling up to kMaxRetryDelay
// (about 1.2 s in all before the caller gets 503), until MOVED says the
// migration is done. Following ASK to the importing node with ASKING would
// not help evsse's scripts: their keys include the channel and the forks
// list, which do not exist as keys, and a multi-key command with missing
// keys in a slot being migrated is answered TRYAGAIN there too.
constexpr Millis kRetryDelay{25};
constexpr Millis kMaxRetryDelay{200};
// While a shard is down or a topic waits for its new shard, the slot map
// is asked again this often.
constexpr Millis kRefreshRetry{250};

// Redirection reads a redirect out of an error status ("redis: MOVED 12
// 127.0.0.1:7001"); `tryagain` is set for TRYAGAIN (retry the same node).
bool Redirection(const Status& s, Redirect* out, bool* tryagain) {
  *tryagain = false;
  if (s.ok()) return false;
  const std::string& m = s.message();
  if (m.find("redis: TRYAGAIN") != std::string::npos) {
    *tryagain = true;
    return true;
  }
  for (std::string_view kind : {"redis: MOVED ", "redis: ASK "}) {
    size_t at = m.find(kind);
    if (at == std::string::npos) continue;
    std::optional<Redirect> r =
        ParseRedirect(std::string_view(m).substr(at + 7), "127.0.0.1");
    if (!r) return false;
    *out = std::move(*r);
    return true;
  }
  return false;
}

using pubsub::Position;

class ClusterLink final : public LinkBase<BackendLink, LinkEnv> {
 public:
  ClusterLink(LinkEnv env, RedisOptions options, std::vector<Address> seeds)
      : LinkBase(std::move(env)),
        options_(std::move(options)),
        seeds_(std::move(seeds)),
        refresh_timer_(evtimer_new(env_.base, &OnRefreshTimer, this)),
        ctl_event_(event_new(env_.base, -1, 0, &OnCtlEvent, this)),
        retry_timer_(evtimer_new(env_.base, &OnRetryTimer, this)),
        flush_event_(event_new(env_.base, -1, 0, &OnFlushEvent, this)),
        ctl_(env_.base, options_.connect_timeout, options_.tcp_user_timeout,
             [this](const std::string& e) { CtlFailed(ctl_gen_, e); }) {}

  ~ClusterLink() override {
    Gone();
    event_free(refresh_timer_);
    event_free(ctl_event_);
    event_free(retry_timer_);
    event_free(flush_event_);
  }

  // OnClose (once, from HubGone or the destructor) stops the link for good:
  // pending callbacks fire (kCancelled) and the engines go, so nothing calls
  // the sink again.
  void OnClose() override {
    sink_ = nullptr;
    evtimer_del(refresh_timer_);
    event_del(ctl_event_);
    evtimer_del(retry_timer_);
    ctl_.Close(CancelledError("redis link closed"));
    // Engines cancel what they hold (their callbacks see closed()).
    shards_.clear();
    std::multimap<std::chrono::steady_clock::time_point, std::function<void()>>
        retries;
    retries.swap(retries_);
    for (auto& [at, fn] : retries) fn();
    completions_.RunAll();
    event_del(flush_event_);
  }

  void Start(BackendSink* sink) override {
    if (started_) return;
    started_ = true;
    sink_ = sink;
    RequestRefresh(Millis(0));
  }

  LinkStats stats() const override {
    // up: every shard's connections are; delivering: every shard delivers
    // (what LinkChanged reported).
    LinkStats s = retired_;  // the counters of closed engines
    s.up = have_map_ && !shards_.empty();
    s.delivering = reported_up_;
    s.publish_errors += publish_errors_;
    s.failovers = map_changes_;
    s.last_error = last_error_;
    for (const auto& shard : shards_) {
      LinkStats e = shard->link->stats();
      s.up = s.up && e.up;
      s.delivering = s.delivering && e.delivering;
      s.reconnects += e.reconnects;
      s.backfilled_events += e.backfilled_events;
      s.publish_errors += e.publish_errors;
      s.replay_fetches += e.replay_fetches;
      s.delivery_lag = std::max(s.delivery_lag, e.delivery_lag);
      s.last_probe_age = std::max(s.last_probe_age, e.last_probe_age);
      s.probes_sent += e.probes_sent;
      s.probes_missed += e.probes_missed;
      s.unreplicated_publishes += e.unreplicated_publishes;
      if (!s.primary.empty()) s.primary += ",";
      s.primary += shard->primary.text;
      if (s.last_error.empty() && !e.up) s.last_error = e.last_error;
    }
    return s;
  }

  BackendStats backend_stats() const override {
    LinkStats s = stats();
    return static_cast<const BackendStats&>(s);
  }

  void Publish(const std::string& topic, std::string_view type,
               std::string_view data, PublishDone done) override {
    auto job = std::make_shared<PublishJob>();
    job->topic = topic;
    job->type.assign(type);
    job->data.assign(data);
    job->done = std::move(done);
    SendPublish(std::move(job));
  }

  void Fetch(const std::string& topic, Position after, Position until,
             size_t limit, FetchDone done) override {
    auto job = std::make_shared<FetchJob>();
    job->topic = topic;
    job->after = after;
    job->until = until;
    job->limit = limit;
    job->done = std::move(done);
    SendFetch(std::move(job));
  }

  void Watch(const std::string& topic) override {
    if (closed()) return;
    auto [it, fresh] = watched_.try_emplace(topic);
    if (!fresh) return;
    Shard* shard = ShardFor(topic);
    it->second.shard = shard;
    if (shard != nullptr) shard->link->Watch(topic);
  }

  void Unwatch(const std::string& topic) override {
    if (closed()) return;
    auto it = watched_.find(topic);
    if (it == watched_.end()) return;
    Shard* shard = it->second.shard;
    watched_.erase(it);
    if (shard != nullptr) shard->link->Unwatch(topic);
  }

 private:
  struct Shard;

  // ShardSink: what one engine reports. Deliveries and syncs of a topic
  // reach the Hub only from the engine that has it now; up and down go to
  // the router, which reports the cluster's.
  class ShardSink final : public BackendSink {
   public:
    ShardSink(ClusterLink* owner, Shard* shard)
        : owner_(owner), shard_(shard) {}
    void Deliver(const std::string& topic, uint64_t epoch,
                 const StoredEvent& event) override {
      if (owner_->Owns(shard_, topic)) {
        owner_->sink_->Deliver(topic, epoch, event);
      }
    }
    void Synced(const std::string& topic, uint64_t epoch,
                Position from) override {
      if (!owner_->Owns(shard_, topic)) return;
      owner_->watched_.at(topic).synced = true;
      owner_->sink_->Synced(topic, epoch, from);
    }
    void Continued(const std::string& topic, uint64_t old_epoch, uint64_t epoch,
                   Position end) override {
      if (owner_->Owns(shard_, topic)) {
        owner_->sink_->Continued(topic, old_epoch, epoch, end);
      }
    }
    Position LastPosition(const std::string& topic, uint64_t* epoch) override {
      if (owner_->sink_ == nullptr) {
        *epoch = 0;
        return {};
      }
      return owner_->sink_->LastPosition(topic, epoch);
    }
    // A Redis stream never starts over under its epoch, and a topic is
    // one stream: the engines never report these.
    void Restarted(const std::string&, uint64_t, Position) override {}
    void ExpansionChanged(const std::string&) override {}
    void LinkChanged(bool up) override {
      shard_->up = up;
      shard_->ever_up = shard_->ever_up || up;
      owner_->UpdateUp();
    }

   private:
    ClusterLink* owner_;
    Shard* shard_;
  };

  struct Shard {
    Address primary;
    bool up = false;
    bool ever_up = false;
    std::unique_ptr<ShardSink> sink;
    std::unique_ptr<LinkImpl> link;
  };

  struct Watched {
    Shard* shard = nullptr;
    bool synced = false;     // the Hub had Synced: a move back-fills
    bool misrouted = false;  // its engine said the slot is not there
    // When it was last misrouted: a topic misrouted again soon (its slot
    // still being migrated: the subscription is refused on the old owner
    // and the map does not name the new one yet) waits kRefreshRetry.
    std::chrono::steady_clock::time_point misrouted_at;
  };

  struct PublishJob {
    std::string topic;
    std::string type;
    std::string data;
    PublishDone done;
    int redirects = 0;
  };
  struct FetchJob {
    std::string topic;
    Position after;
    Position until;
    size_t limit = 0;
    FetchDone done;
    int redirects = 0;
  };

  bool Owns(Shard* shard, const std::string& topic) const {
    if (sink_ == nullptr) return false;
    auto it = watched_.find(topic);
    return it != watched_.end() && it->second.shard == shard;
  }

  // ---- Routing -------------------------------------------------------------

  uint16_t SlotOf(const std::string& topic) const {
    return KeySlot(options_.key_prefix + "{" + topic + "}:s");
  }

  Shard* ShardFor(const std::string& topic) {
    if (!have_map_ || closed()) return nullptr;
    const SlotMap::Shard* s = map_.ShardOf(SlotOf(topic));
    return s != nullptr ? EnsureShard(s->primary) : nullptr;
  }

  Shard* EnsureShard(const Address& primary) {
    for (auto& s : shards_) {
      if (SameNode(s->primary, primary)) return s.get();
    }
    auto shard = std::make_unique<Shard>();
    shard->primary = primary;
    shard->sink = std::make_unique<ShardSink>(this, shard.get());
    LinkEnv env;
    env.base = env_.base;
    env.log = env_.log;
    env.default_max_events = env_.default_max_events;
    env.default_stream_ttl = env_.default_stream_ttl;
    env.sharded = true;
    env.misrouted = [this](const std::string& topic, const std::string&) {
      Misrouted(topic);
    };
    env.down = [this](const std::string& error) {
      last_error_ = error;
      RequestRefresh(Millis(0));
    };
    RedisOptions o = options_;
    o.address = primary.text;
    o.cluster_seeds.clear();
    shard->link =
        std::make_unique<LinkImpl>(std::move(env), std::move(o), primary);
    Shard* raw = shard.get();
    shards_.push_back(std::move(shard));
    Log("redis cluster: shard " + primary.text + " added");
    raw->link->Start(raw->sink.get());
    UpdateUp();
    return raw;
  }

  // Later: a command sent again after `delay` (ASK, TRYAGAIN).
  void Later(Millis delay, std::function<void()> fn) {
    auto at = std::chrono::steady_clock::now() + delay;
    retries_.emplace(at, std::move(fn));
    ArmRetry();
  }

  void ArmRetry() {
    evtimer_del(retry_timer_);
    if (retries_.empty()) return;
    timeval tv =
        ToTimeval(retries_.begin()->first - std::chrono::steady_clock::now());
    evtimer_add(retry_timer_, &tv);
  }

  // Redirected: whether `s` redirects a command that may follow it once
  // more (then `retry` is scheduled); the map learns a MOVED.
  bool Redirected(const Status& s, int* redirects,
                  std::function<void()> retry) {
    Redirect r;
    bool tryagain = false;
    if (closed() || !Redirection(s, &r, &tryagain)) return false;
    if (++*redirects > kMaxRedirects) return false;
    if (tryagain || r.ask) {
      // The map stays as it is until the migration ends (MOVED).
      Later(RetryDelay(*redirects), std::move(retry));
    } else {
      map_.Moved(r.slot, r.address);
      RequestRefresh(Millis(0));
      retry();
    }
    return true;
  }

  // RetryDelay: kRetryDelay doubling with each redirection, at most
  // kMaxRetryDelay.
  static Millis RetryDelay(int redirects) {
    Millis delay = kRetryDelay;
    for (int i = 1; i < redirects && delay < kMaxRetryDelay; ++i) delay *= 2;
    return std::min(delay, kMaxRetryDelay);
  }

  // Connecting: a redirected command whose new shard's engine was just
  // made and is not up yet waits for it (within the redirection budget)
  // instead of failing at once.
  bool Connecting(Shard* shard, int* redirects, std::function<void()> retry) {
    if (*redirects == 0 || shard->up || shard->ever_up) return false;
    if (++*redirects > kMaxRedirects) return false;
    Later(RetryDelay(*redirects), std::move(retry));
    return true;
  }

  Status Unrouted(const std::string& topic) const {
    return UnavailableError(
        have_map_ ? "redis cluster: no primary serves topic '" + topic +
                        "' (slot " + std::to_string(SlotOf(topic)) + ")"
                  : "redis cluster: the slot map is not known yet (" +
                        (last_error_.empty() ? std::string("connecting")
                                             : last_error_) +
                        ")");
  }

  Status Final(Status s, int redirects) const {
    if (s.code() == StatusCode::kCancelled && !closed()) {
      // The shard's engine was closed: its primary serves no slot now.
      return UnavailableError("redis cluster: the shard was replaced (" +
                              s.message() + ")");
    }
    if (redirects > kMaxRedirects) {
      return UnavailableError("redis cluster: more than " +
                              std::to_string(kMaxRedirects) +
                              " redirections (" + s.message() + ")");
    }
    return s;
  }

  void SendPublish(std::shared_ptr<PublishJob> job) {
    if (closed()) {
      return Defer(
          [job] { job->done(CancelledError("redis link closed"), 0, {}); });
    }
    Shard* shard = ShardFor(job->topic);
    if (shard == nullptr) {
      ++publish_errors_;
      return Defer([job, s = Unrouted(job->topic)] { job->done(s, 0, {}); });
    }
    if (Connecting(shard, &job->redirects, [this, job] { SendPublish(job); })) {
      return;
    }
    shard->link->Publish(job->topic, job->type, job->data,
                         [this, job](Status s, uint64_t epoch, Position id) {
                           if (Redirected(s, &job->redirects,
                                          [this, job] { SendPublish(job); })) {
                             return;
                           }
                           job->done(Final(std::move(s), job->redirects), epoch,
                                     id);
                         });
  }

  void SendFetch(std::shared_ptr<FetchJob> job) {
    if (closed()) {
      return Defer([job] { job->done(CancelledError("redis link closed")); });
    }
    Shard* shard = ShardFor(job->topic);
    if (shard == nullptr) {
      return Defer([job, s = Unrouted(job->topic)] { job->done(s); });
    }
    if (Connecting(shard, &job->redirects, [this, job] { SendFetch(job); })) {
      return;
    }
    shard->link->Fetch(
        job->topic, job->after, job->until, job->limit,
        [this, job](Result<FetchResult> r) {
          if (!r.ok() && Redirected(r.status(), &job->redirects,
                                    [this, job] { SendFetch(job); })) {
            return;
          }
          if (!r.ok()) {
            return job->done(Final(r.status(), job->redirects));
          }
          job->done(std::move(r));
        });
  }

  void Misrouted(const std::string& topic) {
    auto it = watched_.find(topic);
    if (it == watched_.end()) return;
    Watched& w = it->second;
    auto now = std::chrono::steady_clock::now();
    bool again = now - w.misrouted_at < kRefreshRetry;
    w.misrouted = true;
    w.misrouted_at = now;
    RequestRefresh(again ? kRefreshRetry : kRetryDelay);
  }

  // ---- The slot map --------------------------------------------------------

  void RequestRefresh(Millis delay) {
    if (closed() || !started_) return;
    if (refreshing_) {
      refresh_again_ = true;
      return;
    }
    if (evtimer_pending(refresh_timer_, nullptr)) return;
    timeval tv = ToTimeval(delay);
    evtimer_add(refresh_timer_, &tv);
  }

  static void OnRefreshTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ClusterLink*>(arg);
    if (self->refreshing_ || self->closed()) return;
    self->refreshing_ = true;
    self->refresh_again_ = false;
    self->ctl_errors_.clear();
    // The seeds, then every node of the last map.
    self->candidates_ = self->seeds_;
    auto add = [self](const Address& a) {
      for (const Address& c : self->candidates_) {
        if (SameNode(c, a)) return;
      }
      self->candidates_.push_back(a);
    };
    if (self->have_map_) {
      for (const SlotMap::Shard& s : self->map_.shards()) {
        add(s.primary);
        for (const Address& r : s.replicas) add(r);
      }
    }
    self->tried_ = 0;
    self->AskNext();
  }

  static void OnCtlEvent(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ClusterLink*>(arg);
    if (self->refreshing_ && !self->closed()) self->AskNext();
  }

  // AskNext asks the next candidate for CLUSTER SLOTS (never inside a
  // callback of ctl_: it closes it).
  void AskNext() {
    if (tried_ >= candidates_.size()) {
      refreshing_ = false;
      last_error_ =
          "no cluster node answered CLUSTER SLOTS (" + ctl_errors_ + ")";
      Log("redis cluster: " + last_error_);
      timeval tv = ToTimeval(std::max(options_.reconnect_min, kRefreshRetry));
      evtimer_add(refresh_timer_, &tv);
      return;
    }
    Address where = candidates_[(next_ + tried_) % candidates_.size()];
    ++tried_;
    ++ctl_gen_;
    ctl_.Close(CancelledError("replaced"));
    if (Status s = ctl_.Open(where); !s.ok()) {
      return CtlFailed(ctl_gen_, s.message());
    }
    uint64_t gen = ctl_gen_;
    if (!options_.password.empty()) {
      std::vector<std::string_view> auth{"AUTH"};
      if (!options_.username.empty()) auth.push_back(options_.username);
      auth.push_back(options_.password);
      ctl_.Command(auth, [this, gen, where](redisReply* r, const Status&) {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
          CtlFailed(gen, where.text +
                             ": AUTH failed: " + std::string(r->str, r->len));
        }
      });
    }
    ctl_.Command({"CLUSTER", "SLOTS"}, [this, gen, where](redisReply* r,
                                                          const Status&) {
      // A lost connection is reported through CtlFailed by the Conn.
      if (r == nullptr || gen != ctl_gen_ || !refreshing_) return;
      if (r->type == REDIS_REPLY_ERROR) {
        return CtlFailed(gen, where.text + ": " + std::string(r->str, r->len));
      }
      Result<SlotMap> map = SlotMap::FromClusterSlots(r, where.host);
      if (!map.ok())
        return CtlFailed(gen, where.text + ": " + map.status().message());
      if (!map->complete()) {
        return CtlFailed(gen, where.text + ": some slots have no primary");
      }
      for (size_t i = 0; i < candidates_.size(); ++i) {
        if (SameNode(candidates_[i], where)) next_ = i;
      }
      refreshing_ = false;
      Apply(std::move(map).value());
    });
  }

  void CtlFailed(uint64_t gen, const std::string& error) {
    if (gen != ctl_gen_ || !refreshing_) return;
    ++ctl_gen_;  // this candidate is done
    if (!ctl_errors_.empty()) ctl_errors_ += "; ";
    ctl_errors_ += error;
    event_active(ctl_event_, EV_TIMEOUT, 0);
  }

  bool ServesSlots(const Address& a) const {
    for (const SlotMap::Shard& s : map_.shards()) {
      if (SameNode(s.primary, a)) return true;
    }
    return false;
  }

  // Apply takes a new map: engines for its primaries, watched topics
  // re-homed to their slot's primary, engines of primaries that serve
  // nothing closed.
  void Apply(SlotMap map) {
    bool changed = false;
    if (have_map_) {
      for (int slot = 0; slot < kSlots && !changed; ++slot) {
        const SlotMap::Shard* a = map_.ShardOf(static_cast<uint16_t>(slot));
        const SlotMap::Shard* b = map.ShardOf(static_cast<uint16_t>(slot));
        changed =
            a == nullptr || b == nullptr || !SameNode(a->primary, b->primary);
      }
      if (changed) {
        ++map_changes_;
        Log("redis cluster: the slot map changed");
      }
    }
    map_ = std::move(map);
    have_map_ = true;
    for (const SlotMap::Shard& s : map_.shards()) EnsureShard(s.primary);
    bool waiting = false;
    for (auto& [topic, w] : watched_) {
      Shard* target = ShardFor(topic);
      if (target == w.shard && !w.misrouted) continue;
      if (w.shard != nullptr) w.shard->link->Unwatch(topic);
      w.shard = target;
      w.misrouted = false;
      if (target == nullptr) {
        waiting = true;
        continue;
      }
      if (w.synced) {
        ++rehomed_;
        Log("redis cluster: topic '" + topic + "' moves to " +
            target->primary.text);
        target->link->Resume(topic);
      } else {
        target->link->Watch(topic);
      }
    }
    for (auto it = shards_.begin(); it != shards_.end();) {
      if (ServesSlots((*it)->primary)) {
        waiting = waiting || !(*it)->up;
        ++it;
        continue;
      }
      Log("redis cluster: shard " + (*it)->primary.text +
          " serves no slot now; closed");
      // Counters stay monotonic (they are Prometheus counters).
      LinkStats e = (*it)->link->stats();
      retired_.reconnects += e.reconnects;
      retired_.backfilled_events += e.backfilled_events;
      retired_.publish_errors += e.publish_errors;
      retired_.replay_fetches += e.replay_fetches;
      retired_.probes_sent += e.probes_sent;
      retired_.probes_missed += e.probes_missed;
      retired_.unreplicated_publishes += e.unreplicated_publishes;
      it = shards_.erase(it);
    }
    UpdateUp();
    if (refresh_again_) {
      refresh_again_ = false;
      RequestRefresh(Millis(0));
    } else if (waiting) {
      RequestRefresh(kRefreshRetry);
    }
  }

  void UpdateUp() {
    if (closed() || sink_ == nullptr) return;
    bool up = have_map_ && !shards_.empty();
    for (const auto& s : shards_) up = up && s->up;
    if (up == reported_up_) return;
    reported_up_ = up;
    sink_->LinkChanged(up);
  }

  // ---- Helpers -------------------------------------------------------------

  static void OnRetryTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ClusterLink*>(arg);
    auto now = std::chrono::steady_clock::now();
    std::vector<std::function<void()>> due;
    while (!self->retries_.empty() && self->retries_.begin()->first <= now) {
      due.push_back(std::move(self->retries_.begin()->second));
      self->retries_.erase(self->retries_.begin());
    }
    self->ArmRetry();
    for (auto& fn : due) fn();
  }

  static void OnFlushEvent(evutil_socket_t, short, void* arg) {
    static_cast<ClusterLink*>(arg)->completions_.RunBatch();
  }

  void Defer(std::function<void()> fn) {
    completions_.Push(std::move(fn));
    if (!closed()) event_active(flush_event_, EV_TIMEOUT, 0);
  }

  RedisOptions options_;
  std::vector<Address> seeds_;
  BackendSink* sink_ = nullptr;
  bool started_ = false;
  bool reported_up_ = false;
  SlotMap map_;
  bool have_map_ = false;
  uint64_t map_changes_ = 0;
  uint64_t rehomed_ = 0;
  uint64_t publish_errors_ = 0;
  LinkStats retired_;  // counters of the engines closed so far
  std::string last_error_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unordered_map<std::string, Watched> watched_;
  // Refreshing the map: the nodes to ask, how many were, where the last
  // good answer came from.
  bool refreshing_ = false;
  bool refresh_again_ = false;
  std::vector<Address> candidates_;
  size_t tried_ = 0;
  size_t next_ = 0;
  uint64_t ctl_gen_ = 0;
  std::string ctl_errors_;
  // Redirected commands waiting to be sent again, by when.
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>>
      retries_;
  Completions completions_;
  event* refresh_timer_;
  event* ctl_event_;
  event* retry_timer_;
  event* flush_event_;
  Conn ctl_;  // CLUSTER SLOTS
};

}  // namespace

std::unique_ptr<BackendLink> MakeClusterLink(LinkEnv env, RedisOptions options,
                                             std::vector<Address> seeds) {
  return std::make_unique<ClusterLink>(std::move(env), std::move(options),
                                       std::move(seeds));
}

}  // namespace evsse::redis::cluster
