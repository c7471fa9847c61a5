// The Kafka link: librdkafka clients behind the Backend seam.
//
// Three clients: a consumer for the live records (legacy per-partition
// consume_start_queue on one queue, no consumer group), a second consumer
// for replay reads, and an idempotent producer. The live queue and the
// producer's main queue signal a pipe (rd_kafka_queue_io_event_enable) that
// the Hub's loop watches; the loop drains both with zero timeouts. Calls
// that can block (watermark queries, starting and stopping partitions,
// replay reads, metadata probes) run on the link's worker thread, which
// posts its results back to the loop through an eventfd.
#include "link.h"
#include "evsse/ext/link_base.h"

#include <event2/event.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace evsse::kafka {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kBatch = 512;
constexpr int kRetryMs = 500;

std::string Join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

bool IsMissing(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
         e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
         e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
}

// Conf is an owned rd_kafka_conf_t until handed to rd_kafka_new.
struct Conf {
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  ~Conf() {
    if (c) rd_kafka_conf_destroy(c);
  }
  Status Set(const std::string& k, const std::string& v) {
    char err[512];
    if (rd_kafka_conf_set(c, k.c_str(), v.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      // The value is left out: it may be a password.
      return InvalidArgumentError("kafka: setting " + k + ": " + err);
    }
    return Status::Ok();
  }
};

// MakeConf: evsse's settings for one client, then the pass-through ones.
Status FillConf(Conf& conf, const KafkaOptions& o,
                const std::vector<std::pair<std::string, std::string>>& own) {
  std::vector<std::pair<std::string, std::string>> all = {
      {"bootstrap.servers", Join(o.brokers, ',')},
      {"client.id", o.client_id},
      {"topic.metadata.refresh.interval.ms",
       std::to_string(o.metadata_refresh.count())},
      // A broker that comes back is found within a second (librdkafka's
      // default backoff grows to 10 s): subscribers wait no longer.
      {"reconnect.backoff.max.ms", "1000"},
  };
  all.insert(all.end(), own.begin(), own.end());
  all.insert(all.end(), o.settings.begin(), o.settings.end());
  for (const auto& [k, v] : all) {
    Status s = conf.Set(k, v);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

struct Key {
  std::string topic;
  int32_t partition = 0;
  friend bool operator<(const Key& a, const Key& b) {
    return a.topic < b.topic ||
           (a.topic == b.topic && a.partition < b.partition);
  }
};

class LinkImpl final : public LinkBase<BackendLink, LinkEnv> {
 public:
  LinkImpl(LinkEnv env, KafkaOptions o)
      : LinkBase(std::move(env)), o_(std::move(o)) {}
  ~LinkImpl() override;

  Status Init();
  void Start(BackendSink* sink) override;
  LinkStats stats() const override;
  BackendStats backend_stats() const override;
  void Publish(const std::string& topic, std::string_view type,
               std::string_view data, PublishDone done) override;
  void Watch(const std::string& topic) override;
  void Unwatch(const std::string& topic) override;
  void Expand(const std::vector<std::string>& topics, ExpandDone done) override;
  void Fetch(const std::string& topic, pubsub::Position after,
             pubsub::Position until, size_t limit, FetchDone done) override;
  bool FitCursor(const std::vector<std::vector<std::string>>& expanded,
                 std::vector<pubsub::TopicCursor>* cursor) const override;

 private:
  struct Watched {
    Key key;
    uint64_t gen = 0;
  };
  struct PendingPublish {
    PublishDone done;
  };

  // OnClose (once, from HubGone or the destructor): stop the worker and the
  // clients, fail what is pending (kCancelled).
  void OnClose() override;
  // Worker side.
  void WorkerRun();
  void PostWork(std::function<void()> task);
  // PostToLoop runs `fn` on the loop (any thread, also the loop's own:
  // then later, never inside the caller).
  void PostToLoop(std::function<void()> fn);
  rd_kafka_topic_t* WorkerTopic(rd_kafka_t* rk, const std::string& name);
  void WorkerWatch(std::string topic, Key key, uint64_t gen);
  void WorkerProbe();
  // WorkerPartitions: the partition count of a Kafka topic from the
  // cluster's metadata, 0 for a topic that does not exist (yet, or for
  // now), or -1 with `why` set.
  int32_t WorkerPartitions(const std::string& topic, std::string* why);

  // Loop side.
  static void OnWake(evutil_socket_t fd, short, void* arg);
  static void OnQueue(evutil_socket_t fd, short, void* arg);
  static void OnRetry(evutil_socket_t, short, void* arg);
  static void OnGrowCheck(evutil_socket_t, short, void* arg);
  // Resync: the live consumer stopped at offset `at` of a partition it
  // no longer has (auto.offset.reset=error): read its watermarks, tell the
  // Hub what its subscribers missed, and read on from where it can.
  void Resync(const Key& key, int64_t at);
  void Resynced(const Key& key, int64_t at, rd_kafka_resp_err_t e, int64_t lo,
                int64_t hi);
  // NoteCount records a bare topic's partition count; one that grew ends
  // the streams that asked for the bare topic (ExpansionChanged).
  void NoteCount(const std::string& topic, int32_t n);
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m,
                         void* opaque);
  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque);
  void DrainQueues();
  void HandleRecord(const rd_kafka_message_t* m);
  void SetUp(bool up, const std::string& why);
  bool Accept(std::string_view type, std::string_view data) const {
    return !env_.accept || env_.accept(type, data);
  }
  // RecordType: the record's event type ("" for "message").
  std::string RecordType(const rd_kafka_message_t* m) const;

  KafkaOptions o_;
  BackendSink* sink_ = nullptr;

  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_t* replay_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_queue_t* live_q_ = nullptr;  // live records
  rd_kafka_queue_t* prod_q_ = nullptr;  // producer's main queue
  int pipe_[2] = {-1, -1};              // the queues' io events
  int wake_fd_ = -1;                    // the worker's results
  event* queue_ev_ = nullptr;
  event* wake_ev_ = nullptr;
  event* retry_ev_ = nullptr;
  event* grow_ev_ = nullptr;  // every metadata_refresh: partitions added?

  // Loop-thread state.
  std::unordered_map<std::string, Watched> watched_;
  // partition -> the evsse topics reading it ("t" and "t@0" share one)
  std::map<Key, std::vector<std::string>> by_key_;
  uint64_t next_gen_ = 0;
  std::unordered_map<uint64_t, PendingPublish> publishes_;
  uint64_t next_publish_ = 0;
  std::unordered_map<uint64_t, FetchDone> fetches_;
  uint64_t next_fetch_ = 0;
  struct PendingExpand {
    std::vector<std::string> topics;
    ExpandDone done;
  };
  std::unordered_map<uint64_t, PendingExpand> expands_;
  uint64_t next_expand_ = 0;
  // Kafka topic -> its last known partition count (used while no broker
  // answers a metadata request).
  std::unordered_map<std::string, int32_t> partition_counts_;
  bool up_ = false;
  bool probing_ = false;
  bool ever_up_ = false;
  std::vector<std::pair<std::string, uint64_t>> retry_watches_;
  std::set<Key> resyncing_;  // partitions whose Resync is under way
  std::vector<std::pair<Key, int64_t>> retry_resyncs_;
  bool grow_checking_ = false;
  LinkStats stats_;
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> replay_fetches_{0};

  // Worker thread.
  std::thread worker_;
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;
  bool stop_ = false;
  std::map<std::pair<rd_kafka_t*, std::string>, rd_kafka_topic_t*> topics_;
  std::set<Key> running_;  // partitions started on the live consumer

  // Worker -> loop.
  std::mutex done_mu_;
  std::vector<std::function<void()>> done_;
};

Status LinkImpl::Init() {
  char err[512];
  {
    Conf conf;
    // auto.offset.reset=error: an offset the partition no longer has (its
    // log start passed it, or the topic was deleted and created again and
    // ends before it) stops the partition with an error event (Resync)
    // instead of jumping silently to another offset.
    Status s = FillConf(conf, o_,
                        {{"enable.partition.eof", "false"},
                         {"enable.auto.commit", "false"},
                         {"auto.offset.reset", "error"}});
    if (!s.ok()) return s;
    rd_kafka_conf_set_error_cb(conf.c, &LinkImpl::OnError);
    rd_kafka_conf_set_opaque(conf.c, this);
    consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.c, err, sizeof(err));
    if (!consumer_) return InvalidArgumentError(std::string("kafka: ") + err);
    conf.c = nullptr;
  }
  {
    Conf conf;
    Status s = FillConf(conf, o_,
                        {{"enable.partition.eof", "true"},
                         {"enable.auto.commit", "false"},
                         {"fetch.wait.max.ms", "50"},
                         {"auto.offset.reset", "error"}});
    if (!s.ok()) return s;
    replay_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.c, err, sizeof(err));
    if (!replay_) return InvalidArgumentError(std::string("kafka: ") + err);
    conf.c = nullptr;
  }
  {
    Conf conf;
    Status s = FillConf(
        conf, o_,
        {{"enable.idempotence", "true"},
         {"acks", "all"},
         {"linger.ms", "1"},
         {"delivery.timeout.ms", std::to_string(o_.publish_timeout.count())}});
    if (!s.ok()) return s;
    rd_kafka_conf_set_dr_msg_cb(conf.c, &LinkImpl::OnDelivery);
    rd_kafka_conf_set_error_cb(conf.c, &LinkImpl::OnError);
    rd_kafka_conf_set_opaque(conf.c, this);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf.c, err, sizeof(err));
    if (!producer_) return InvalidArgumentError(std::string("kafka: ") + err);
    conf.c = nullptr;
  }
  if (pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
    return InternalError(std::string("kafka: pipe: ") + strerror(errno));
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0)
    return InternalError(std::string("kafka: eventfd: ") + strerror(errno));
  live_q_ = rd_kafka_queue_new(consumer_);
  // The consumer's own events (errors) go to the live queue too, so that
  // draining it serves them.
  rd_kafka_queue_t* main_q = rd_kafka_queue_get_main(consumer_);
  rd_kafka_queue_forward(main_q, live_q_);
  rd_kafka_queue_destroy(main_q);
  prod_q_ = rd_kafka_queue_get_main(producer_);
  static const char kByte = 1;
  rd_kafka_queue_io_event_enable(live_q_, pipe_[1], &kByte, 1);
  rd_kafka_queue_io_event_enable(prod_q_, pipe_[1], &kByte, 1);
  queue_ev_ = event_new(env_.base, pipe_[0], EV_READ | EV_PERSIST,
                        &LinkImpl::OnQueue, this);
  wake_ev_ = event_new(env_.base, wake_fd_, EV_READ | EV_PERSIST,
                       &LinkImpl::OnWake, this);
  retry_ev_ = event_new(env_.base, -1, 0, &LinkImpl::OnRetry, this);
  grow_ev_ = event_new(env_.base, -1, EV_PERSIST, &LinkImpl::OnGrowCheck, this);
  if (!queue_ev_ || !wake_ev_ || !retry_ev_ || !grow_ev_)
    return InternalError("kafka: event_new failed");
  event_add(queue_ev_, nullptr);
  event_add(wake_ev_, nullptr);
  timeval every{
      static_cast<time_t>(o_.metadata_refresh.count() / 1000),
      static_cast<suseconds_t>(o_.metadata_refresh.count() % 1000 * 1000)};
  event_add(grow_ev_, &every);
  worker_ = std::thread([this] { WorkerRun(); });
  return Status::Ok();
}

LinkImpl::~LinkImpl() { Gone(); }

void LinkImpl::OnClose() {
  sink_ = nullptr;
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      stop_ = true;
      work_.clear();
    }
    work_cv_.notify_all();
    worker_.join();
  }
  for (event* e : {queue_ev_, wake_ev_, retry_ev_, grow_ev_})
    if (e) event_free(e);
  // What is pending now will never be answered.
  auto publishes = std::move(publishes_);
  auto fetches = std::move(fetches_);
  auto expands = std::move(expands_);
  for (auto& [id, x] : expands) x.done(CancelledError("kafka link destroyed"));
  for (auto& [id, p] : publishes)
    p.done(CancelledError("kafka link destroyed"), 0, {});
  for (auto& [id, f] : fetches) f(CancelledError("kafka link destroyed"));
  if (consumer_) {
    for (const Key& k : running_)
      rd_kafka_consume_stop(topics_[{consumer_, k.topic}], k.partition);
  }
  for (auto& [k, t] : topics_) rd_kafka_topic_destroy(t);
  if (live_q_) rd_kafka_queue_destroy(live_q_);
  if (prod_q_) rd_kafka_queue_destroy(prod_q_);
  if (producer_) {
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE |
                                  RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
    rd_kafka_destroy(producer_);
  }
  if (consumer_)
    rd_kafka_destroy_flags(consumer_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  if (replay_)
    rd_kafka_destroy_flags(replay_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  // After the clients: librdkafka writes to the pipe until then.
  for (int fd : {pipe_[0], pipe_[1], wake_fd_})
    if (fd >= 0) close(fd);
}

// ---- Worker thread ------------------------------------------------------

void LinkImpl::WorkerRun() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait(lock, [this] { return stop_ || !work_.empty(); });
      if (stop_) return;
      task = std::move(work_.front());
      work_.pop_front();
    }
    task();
  }
}

void LinkImpl::PostWork(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_.push_back(std::move(task));
  }
  work_cv_.notify_one();
}

void LinkImpl::PostToLoop(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  // A full counter (EAGAIN) still leaves the loop woken.
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;
}

rd_kafka_topic_t* LinkImpl::WorkerTopic(rd_kafka_t* rk,
                                        const std::string& name) {
  rd_kafka_topic_t*& t = topics_[{rk, name}];
  if (!t) t = rd_kafka_topic_new(rk, name.c_str(), nullptr);
  return t;
}

void LinkImpl::WorkerWatch(std::string topic, Key key, uint64_t gen) {
  int64_t lo = 0, hi = 0;
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
      consumer_, key.topic.c_str(), key.partition, &lo, &hi,
      static_cast<int>(o_.fetch_timeout.count()));
  if (IsMissing(e)) {
    // Not created yet: read it from its start once it is.
    hi = 0;
    e = RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string why = rd_kafka_err2str(e);
    PostToLoop([this, topic, gen, why] {
      auto it = watched_.find(topic);
      if (it == watched_.end() || it->second.gen != gen) return;
      Log("kafka: " + topic + ": watermarks: " + why + " (retrying)");
      retry_watches_.emplace_back(topic, gen);
      timeval tv{0, kRetryMs * 1000};
      event_add(retry_ev_, &tv);
    });
    return;
  }
  if (!running_.count(key)) {
    rd_kafka_topic_t* rkt = WorkerTopic(consumer_, key.topic);
    if (rd_kafka_consume_start_queue(rkt, key.partition, hi, live_q_) != 0) {
      std::string why = rd_kafka_err2str(rd_kafka_last_error());
      PostToLoop([this, topic, why] {
        Log("kafka: " + topic + ": cannot start: " + why);
      });
      return;
    }
    running_.insert(key);
  }
  PostToLoop([this, topic, gen, key, hi] {
    auto it = watched_.find(topic);
    if (it == watched_.end() || it->second.gen != gen) return;
    if (!up_) SetUp(true, "");
    sink_->Synced(topic, static_cast<uint64_t>(key.partition) + 1,
                  pubsub::Position{static_cast<uint64_t>(hi), 0});
  });
}

void LinkImpl::WorkerProbe() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(
      producer_, 0, nullptr, &md, static_cast<int>(o_.fetch_timeout.count()));
  if (md) rd_kafka_metadata_destroy(md);
  std::string why = rd_kafka_err2str(e);
  PostToLoop([this, e, why] {
    probing_ = false;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (!up_) SetUp(true, "");
      return;
    }
    if (up_) SetUp(false, why);
    timeval tv{0, kRetryMs * 1000};
    event_add(retry_ev_, &tv);
  });
}

int32_t LinkImpl::WorkerPartitions(const std::string& topic, std::string* why) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e =
      rd_kafka_metadata(consumer_, 0, WorkerTopic(consumer_, topic), &md,
                        static_cast<int>(o_.fetch_timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md) rd_kafka_metadata_destroy(md);
    *why = rd_kafka_err2str(e);
    return -1;
  }
  int32_t n = -1;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.partition_cnt > 0)
      n = t.partition_cnt;
    else if (IsMissing(t.err) || t.err == RD_KAFKA_RESP_ERR_NO_ERROR)
      n = 0;  // not created yet
    else
      *why = rd_kafka_err2str(t.err);
  }
  if (n < 0 && why->empty()) n = 0;  // not in the answer: not created yet
  rd_kafka_metadata_destroy(md);
  return n;
}

// ---- Loop thread --------------------------------------------------------

void LinkImpl::Start(BackendSink* sink) {
  sink_ = sink;
  probing_ = true;
  PostWork([this] { WorkerProbe(); });
}

void LinkImpl::SetUp(bool up, const std::string& why) {
  if (up == up_) return;
  up_ = up;
  if (up && ever_up_) ++stats_.reconnects;
  ever_up_ = ever_up_ || up;
  stats_.up = up;
  Log(up ? "kafka: cluster reachable" : "kafka: cluster unreachable: " + why);
  if (sink_) sink_->LinkChanged(up);
}

void LinkImpl::OnWake(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  uint64_t n;
  ssize_t r = read(fd, &n, sizeof(n));
  (void)r;
  std::vector<std::function<void()>> done;
  {
    std::lock_guard<std::mutex> lock(self->done_mu_);
    done.swap(self->done_);
  }
  for (auto& fn : done) fn();
}

void LinkImpl::OnQueue(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  char buf[256];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
  self->DrainQueues();
}

void LinkImpl::DrainQueues() {
  rd_kafka_message_t* batch[kBatch];
  while (true) {
    ssize_t n = rd_kafka_consume_batch_queue(live_q_, 0, batch, kBatch);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      HandleRecord(batch[i]);
      rd_kafka_message_destroy(batch[i]);
    }
    if (static_cast<size_t>(n) < kBatch) break;
  }
  // Delivery reports and producer errors (OnDelivery, OnError).
  rd_kafka_poll(producer_, 0);
}

std::string LinkImpl::RecordType(const rd_kafka_message_t* m) const {
  rd_kafka_headers_t* h = nullptr;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return "";
  const void* v = nullptr;
  size_t len = 0;
  if (rd_kafka_header_get_last(h, o_.event_header.c_str(), &v, &len) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      v == nullptr)
    return "";
  return std::string(static_cast<const char*>(v), len);
}

void LinkImpl::HandleRecord(const rd_kafka_message_t* m) {
  if (m->err) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
      Resync(Key{rd_kafka_topic_name(m->rkt), m->partition}, m->offset);
      return;
    }
    std::string where = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    Log("kafka: consumer: " + where + " " + rd_kafka_message_errstr(m));
    return;
  }
  Key key{rd_kafka_topic_name(m->rkt), m->partition};
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;  // unwatched since
  StoredEvent ev;
  ev.type = RecordType(m);
  if (m->payload) ev.data.assign(static_cast<const char*>(m->payload), m->len);
  if (!Accept(ev.type, ev.data)) {
    ++skipped_;
    return;
  }
  ev.position = pubsub::Position{static_cast<uint64_t>(m->offset) + 1, 0};
  ++stats_.records_delivered;
  // A copy: the sink may watch or unwatch from inside Deliver.
  std::vector<std::string> names = it->second;
  for (const std::string& name : names)
    sink_->Deliver(name, static_cast<uint64_t>(m->partition) + 1, ev);
}

void LinkImpl::OnError(rd_kafka_t* rk, int err, const char* reason,
                       void* opaque) {
  auto* self = static_cast<LinkImpl*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    // Runs on the loop (served from DrainQueues). Probe until back.
    self->SetUp(false, reason);
    if (!self->probing_) {
      self->probing_ = true;
      self->PostWork([self] { self->WorkerProbe(); });
    }
    return;
  }
  self->Log(std::string("kafka: ") + reason);
}

void LinkImpl::Resync(const Key& key, int64_t at) {
  if (!by_key_.count(key) || !resyncing_.insert(key).second) return;
  PostWork([this, key, at] {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        consumer_, key.topic.c_str(), key.partition, &lo, &hi,
        static_cast<int>(o_.fetch_timeout.count()));
    if (IsMissing(e)) {
      // Deleted and not created again yet: it starts over at 0.
      lo = hi = 0;
      e = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    PostToLoop([this, key, at, e, lo, hi] { Resynced(key, at, e, lo, hi); });
  });
}

void LinkImpl::Resynced(const Key& key, int64_t at, rd_kafka_resp_err_t e,
                        int64_t lo, int64_t hi) {
  resyncing_.erase(key);
  auto k = by_key_.find(key);
  if (k == by_key_.end()) return;  // unwatched since
  std::string where = key.topic + "@" + std::to_string(key.partition);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log("kafka: " + where + ": watermarks: " + rd_kafka_err2str(e) +
        " (retrying)");
    retry_resyncs_.emplace_back(key, at);
    timeval tv{0, kRetryMs * 1000};
    event_add(retry_ev_, &tv);
    return;
  }
  const uint64_t epoch = static_cast<uint64_t>(key.partition) + 1;
  int64_t restart = hi;
  // A copy: the sink may watch or unwatch from inside its calls.
  std::vector<std::string> names = k->second;
  for (const std::string& name : names) {
    uint64_t held_epoch = 0;
    // The next offset this topic of the Hub needs.
    int64_t next =
        static_cast<int64_t>(sink_->LastPosition(name, &held_epoch).major);
    if (next > hi) {
      // The partition ends before what this node read of it: the topic was
      // deleted and created again (its offsets began anew).
      Log("kafka: " + where + " ends at offset " + std::to_string(hi) +
          ", before offset " + std::to_string(next) +
          " this node had read: the topic was created again; '" + name +
          "' starts over (its subscribers get the gap event)");
      sink_->Restarted(name, epoch,
                       pubsub::Position{static_cast<uint64_t>(hi), 0});
      restart = std::min(restart, hi);
    } else if (next < lo) {
      // Retention removed records this node had not read yet.
      Log("kafka: " + where + ": offsets " + std::to_string(next) + " to " +
          std::to_string(lo - 1) +
          " were removed (retention) before this node read them; '" + name +
          "' goes on from " + std::to_string(lo) +
          " (its subscribers get the gap event)");
      sink_->Synced(name, epoch,
                    pubsub::Position{static_cast<uint64_t>(lo), 0});
      restart = std::min(restart, lo);
    } else {
      restart = std::min(restart, next);
    }
  }
  if (!by_key_.count(key)) return;
  PostWork([this, key, restart] {
    rd_kafka_topic_t* rkt = WorkerTopic(consumer_, key.topic);
    if (running_.erase(key)) rd_kafka_consume_stop(rkt, key.partition);
    if (rd_kafka_consume_start_queue(rkt, key.partition, restart, live_q_) !=
        0) {
      std::string why = rd_kafka_err2str(rd_kafka_last_error());
      PostToLoop([this, key, why] {
        Log("kafka: " + key.topic + "@" + std::to_string(key.partition) +
            ": cannot restart: " + why);
      });
      return;
    }
    running_.insert(key);
  });
}

void LinkImpl::NoteCount(const std::string& topic, int32_t n) {
  auto [it, fresh] = partition_counts_.emplace(topic, n);
  if (fresh || n <= it->second) {
    if (n > 0 && !fresh && n < it->second)
      it->second = n;  // created again with fewer: no stream to end
    return;
  }
  Log("kafka: topic " + topic + " grew from " + std::to_string(it->second) +
      " to " + std::to_string(n) + " partitions");
  it->second = n;
  if (sink_) sink_->ExpansionChanged(topic);
}

void LinkImpl::OnGrowCheck(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  if (!self->up_ || self->grow_checking_) return;
  // The bare topics this node expanded whose partitions it still reads.
  std::vector<std::string> ask;
  for (const auto& [name, n] : self->partition_counts_) {
    auto k = self->by_key_.lower_bound(Key{name, 0});
    if (k != self->by_key_.end() && k->first.topic == name) ask.push_back(name);
  }
  if (ask.empty()) return;
  self->grow_checking_ = true;
  self->PostWork([self, ask = std::move(ask)] {
    std::vector<std::pair<std::string, int32_t>> counts;
    for (const std::string& t : ask) {
      std::string why;
      counts.emplace_back(t, self->WorkerPartitions(t, &why));
    }
    self->PostToLoop([self, counts = std::move(counts)] {
      self->grow_checking_ = false;
      for (const auto& [t, n] : counts)
        if (n > 0) self->NoteCount(t, n);
    });
  });
}

void LinkImpl::OnRetry(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  auto resyncs = std::move(self->retry_resyncs_);
  self->retry_resyncs_.clear();
  for (auto& [key, at] : resyncs) self->Resync(key, at);
  auto retries = std::move(self->retry_watches_);
  self->retry_watches_.clear();
  for (auto& [topic, gen] : retries) {
    auto it = self->watched_.find(topic);
    if (it == self->watched_.end() || it->second.gen != gen) continue;
    Key key = it->second.key;
    self->PostWork([self, topic = topic, key, gen = gen] {
      self->WorkerWatch(topic, key, gen);
    });
  }
  if (!self->up_ && !self->probing_) {
    self->probing_ = true;
    self->PostWork([self] { self->WorkerProbe(); });
  }
}

void LinkImpl::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m,
                          void* opaque) {
  auto* self = static_cast<LinkImpl*>(opaque);
  uint64_t id = reinterpret_cast<uintptr_t>(m->_private);
  auto it = self->publishes_.find(id);
  if (it == self->publishes_.end()) return;
  PublishDone done = std::move(it->second.done);
  self->publishes_.erase(it);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    done(Status::Ok(), static_cast<uint64_t>(m->partition) + 1,
         pubsub::Position{static_cast<uint64_t>(m->offset) + 1, 0});
    return;
  }
  ++self->stats_.publish_errors;
  std::string why = std::string("kafka: ") + rd_kafka_err2str(m->err);
  if (rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
    done(UnavailableError(why + " (not stored)"), 0, {});
  else
    done(UnknownError(why + " (it may have been stored)"), 0, {});
}

void LinkImpl::Publish(const std::string& topic, std::string_view type,
                       std::string_view data, PublishDone done) {
  std::string kt;
  int32_t partition = -1;
  Status s = SplitTopic(topic, &kt, &partition);
  if (!s.ok()) {
    ++stats_.publish_errors;
    PostToLoop([done = std::move(done), s] { done(s, 0, {}); });
    return;
  }
  if (!up_) {
    // No broker answers: fail fast (not stored, safe to retry), as the
    // Redis link does while down.
    ++stats_.publish_errors;
    PostToLoop([done = std::move(done)] {
      done(UnavailableError("kafka: no broker reachable (not stored)"), 0, {});
    });
    return;
  }
  uint64_t id = ++next_publish_;
  rd_kafka_headers_t* h = nullptr;
  if (!type.empty()) {
    h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, o_.event_header.data(),
                        static_cast<ssize_t>(o_.event_header.size()),
                        type.data(), static_cast<ssize_t>(type.size()));
  }
  publishes_[id].done = std::move(done);
  rd_kafka_resp_err_t e = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(kt.c_str()),
      // A bare topic: librdkafka's partitioner picks the partition.
      RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(data.data()), data.size()),
      RD_KAFKA_V_HEADERS(h),
      RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(id))),
      RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (h) rd_kafka_headers_destroy(h);
    ++stats_.publish_errors;
    std::string why = std::string("kafka: ") + rd_kafka_err2str(e);
    PostToLoop([this, id, why] {
      auto it = publishes_.find(id);
      if (it == publishes_.end()) return;
      PublishDone d = std::move(it->second.done);
      publishes_.erase(it);
      d(UnavailableError(why), 0, {});
    });
  }
}

void LinkImpl::Watch(const std::string& topic) {
  std::string kt;
  int32_t partition = -1;
  Status s = SplitTopic(topic, &kt, &partition);
  if (!s.ok()) {
    // Nothing to read: the Hub's sessions must not wait for it.
    Log(s.message());
    PostToLoop([this, topic] { sink_->Synced(topic, 0, {}); });
    return;
  }
  Watched& w = watched_[topic];
  w.key = Key{kt, std::max(partition, 0)};
  w.gen = ++next_gen_;
  by_key_[w.key].push_back(topic);
  PostWork([this, topic, key = w.key, gen = w.gen] {
    WorkerWatch(topic, key, gen);
  });
}

void LinkImpl::Expand(const std::vector<std::string>& topics, ExpandDone done) {
  // Bare names are whole Kafka topics: ask the cluster for their partition
  // counts (on the worker). "t@p" and names SplitTopic refuses (Watch logs
  // them) stand for themselves.
  std::vector<std::string> ask;
  for (const std::string& t : topics) {
    std::string kt;
    int32_t partition = -1;
    if (SplitTopic(t, &kt, &partition).ok() && partition < 0 &&
        std::find(ask.begin(), ask.end(), kt) == ask.end())
      ask.push_back(kt);
  }
  uint64_t id = ++next_expand_;
  expands_[id] = PendingExpand{topics, std::move(done)};
  auto finish = [this, id](std::vector<std::pair<std::string, int32_t>> counts,
                           std::string why) {
    auto it = expands_.find(id);
    if (it == expands_.end()) return;
    PendingExpand x = std::move(it->second);
    expands_.erase(it);
    for (auto& [name, n] : counts) {
      auto c = partition_counts_.find(name);
      if (n > 0) {
        NoteCount(name, n);
      } else if (c != partition_counts_.end()) {
        // The cluster does not answer, or does not know the topic (deleted,
        // or a metadata hiccup): the last count known. Fewer partitions now
        // would drop positions of resuming cursors (FitCursor).
        n = c->second;
      } else if (n == 0) {
        n = 1;  // not created yet: its partition 0, read once it is
        NoteCount(name, n);
      } else {
        x.done(UnavailableError("kafka: partitions of " + name + ": " + why));
        return;
      }
    }
    std::vector<std::vector<std::string>> out;
    for (const std::string& t : x.topics) {
      auto c = std::find_if(counts.begin(), counts.end(),
                            [&](const auto& kv) { return kv.first == t; });
      if (c == counts.end() || t.find('@') != std::string::npos) {
        out.push_back({t});
        continue;
      }
      std::vector<std::string> parts;
      for (int32_t p = 0; p < c->second; ++p)
        parts.push_back(t + "@" + std::to_string(p));
      out.push_back(std::move(parts));
    }
    x.done(std::move(out));
  };
  PostWork([this, ask = std::move(ask), finish = std::move(finish)] {
    std::vector<std::pair<std::string, int32_t>> counts;
    std::string why;
    for (const std::string& t : ask) {
      std::string w;
      int32_t n = WorkerPartitions(t, &w);
      if (n < 0) why = w;
      counts.emplace_back(t, n);
    }
    PostToLoop([finish, counts = std::move(counts), why]() mutable {
      finish(std::move(counts), why);
    });
  });
}

void LinkImpl::Unwatch(const std::string& topic) {
  auto it = watched_.find(topic);
  if (it == watched_.end()) return;
  Key key = it->second.key;
  watched_.erase(it);
  auto k = by_key_.find(key);
  if (k != by_key_.end()) {
    auto& names = k->second;
    names.erase(std::remove(names.begin(), names.end(), topic), names.end());
    if (!names.empty()) return;  // another name still reads it
    by_key_.erase(k);
  }
  PostWork([this, key] {
    if (!running_.erase(key)) return;
    rd_kafka_consume_stop(WorkerTopic(consumer_, key.topic), key.partition);
  });
}

void LinkImpl::Fetch(const std::string& topic, pubsub::Position after,
                     pubsub::Position until, size_t limit, FetchDone done) {
  std::string kt;
  int32_t partition = -1;
  Status s = SplitTopic(topic, &kt, &partition);
  if (!s.ok()) {
    PostToLoop([done = std::move(done)] { done(FetchResult{}); });
    return;
  }
  partition = std::max(partition, 0);
  uint64_t id = ++next_fetch_;
  fetches_[id] = std::move(done);
  ++replay_fetches_;
  PostWork([this, id, kt, partition, after, until, limit] {
    Result<FetchResult> r = FetchResult{};
    FetchResult& out = r.value();
    out.epoch = static_cast<uint64_t>(partition) + 1;
    int64_t lo = 0, hi = 0;
    int timeout = static_cast<int>(o_.fetch_timeout.count());
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        replay_, kt.c_str(), partition, &lo, &hi, timeout);
    int64_t start = static_cast<int64_t>(after.major);
    int64_t end = static_cast<int64_t>(until.major);
    if (IsMissing(e)) {
      // Deleted (or never made): whatever the client had is gone.
      out.trimmed = start > 0;
    } else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      r = UnavailableError(std::string("kafka: replay of ") + kt + "@" +
                           std::to_string(partition) + ": " +
                           rd_kafka_err2str(e));
    } else {
      out.trimmed = start < lo;
      // Past the partition's end: an offset of the topic before it was
      // deleted and created again (no record of this one was there yet).
      out.ahead = start > hi;
      start = std::max(start, lo);
      end = std::min(end, hi);
    }
    if (r.ok() && !IsMissing(e) && start < end) {
      rd_kafka_topic_t* rkt = WorkerTopic(replay_, kt);
      if (rd_kafka_consume_start(rkt, partition, start) != 0) {
        r = UnavailableError(std::string("kafka: replay start: ") +
                             rd_kafka_err2str(rd_kafka_last_error()));
      } else {
        auto deadline = Clock::now() + o_.fetch_timeout;
        while (true) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now())
                          .count();
          if (left <= 0) {
            r = UnavailableError("kafka: replay read timed out");
            break;
          }
          rd_kafka_message_t* m =
              rd_kafka_consume(rkt, partition, static_cast<int>(left));
          if (!m) continue;  // timed out this round
          if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
          }
          if (m->err) {
            r = UnavailableError(std::string("kafka: replay read: ") +
                                 rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            break;
          }
          if (m->offset >= end) {
            rd_kafka_message_destroy(m);
            break;
          }
          StoredEvent ev;
          ev.type = RecordType(m);
          if (m->payload)
            ev.data.assign(static_cast<const char*>(m->payload), m->len);
          ev.position =
              pubsub::Position{static_cast<uint64_t>(m->offset) + 1, 0};
          int64_t offset = m->offset;
          rd_kafka_message_destroy(m);
          if (Accept(ev.type, ev.data))
            out.events.push_back(std::move(ev));
          else
            ++skipped_;
          if (offset + 1 >= end) break;
          if (out.events.size() >= limit) {
            out.more = true;
            break;
          }
        }
        rd_kafka_consume_stop(rkt, partition);
      }
    }
    PostToLoop([this, id, r = std::move(r)]() mutable {
      auto it = fetches_.find(id);
      if (it == fetches_.end()) return;
      FetchDone d = std::move(it->second);
      fetches_.erase(it);
      d(std::move(r));
    });
  });
}

bool LinkImpl::FitCursor(const std::vector<std::vector<std::string>>& expanded,
                         std::vector<pubsub::TopicCursor>* cursor) const {
  // A position's epoch names its partition (p+1; 0: no record yet), and a
  // requested topic's positions come in its partitions' order: each
  // requested topic takes the positions that name its partitions in turn,
  // and the partitions after them (added since) start from their beginning.
  // Positions of partitions a bare topic no longer has (it was deleted and
  // created again with fewer) are dropped.
  std::vector<pubsub::TopicCursor> out;
  size_t at = 0;
  for (const std::vector<std::string>& group : expanded) {
    bool added = false;  // the partitions from here on are new
    for (size_t j = 0; j < group.size(); ++j) {
      std::string kt;
      int32_t p = -1;
      if (!SplitTopic(group[j], &kt, &p).ok()) return false;
      uint64_t epoch = static_cast<uint64_t>(std::max(p, 0)) + 1;
      // Epoch 0 ("before the stream existed") fits any partition.
      if (!added && at < cursor->size() &&
          ((*cursor)[at].epoch == epoch || (*cursor)[at].epoch == 0)) {
        out.push_back((*cursor)[at++]);
      } else if (j > 0) {
        added = true;
        out.push_back(pubsub::TopicCursor{});
      } else {
        return false;  // a requested topic the cursor has nothing of
      }
    }
    std::string kt;
    int32_t last = -1;
    if (!added && SplitTopic(group.back(), &kt, &last).ok() &&
        last + 1 == static_cast<int32_t>(group.size())) {
      // A whole topic: skip the partitions past its end.
      uint64_t gone = group.size() + 1;
      while (at < cursor->size() && (*cursor)[at].epoch == gone) {
        ++at;
        ++gone;
      }
    }
  }
  if (at != cursor->size()) return false;
  *cursor = std::move(out);
  return true;
}

LinkStats LinkImpl::stats() const {
  LinkStats s = stats_;
  s.records_skipped = skipped_.load();
  s.replay_fetches = replay_fetches_.load();
  return s;
}

BackendStats LinkImpl::backend_stats() const { return stats(); }

}  // namespace

Status SplitTopic(std::string_view topic, std::string* kafka_topic,
                  int32_t* partition) {
  size_t at = topic.rfind('@');
  std::string_view name =
      at == std::string_view::npos ? topic : topic.substr(0, at);
  if (name.empty())
    return InvalidArgumentError("kafka: topic '" + std::string(topic) +
                                "' has an empty Kafka topic name");
  *partition = -1;
  if (at != std::string_view::npos) {
    std::string_view num = topic.substr(at + 1);
    int32_t p = -1;
    auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), p);
    if (num.empty() || ec != std::errc() || ptr != num.data() + num.size() ||
        p < 0) {
      return InvalidArgumentError(
          "kafka: topic '" + std::string(topic) +
          "': after '@' comes a partition number (0, 1, ...)");
    }
    *partition = p;
  }
  kafka_topic->assign(name.data(), name.size());
  return Status::Ok();
}

Status Validate(const KafkaOptions& o) {
  if (o.brokers.empty())
    return InvalidArgumentError("kafka: brokers: at least one HOST:PORT");
  for (const std::string& b : o.brokers) {
    size_t colon = b.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == b.size() ||
        b.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
      return InvalidArgumentError("kafka: broker '" + b + "' is not HOST:PORT");
    }
  }
  if (o.event_header.empty())
    return InvalidArgumentError("kafka: event_header is empty");
  if (o.publish_timeout.count() <= 0 || o.fetch_timeout.count() <= 0 ||
      o.metadata_refresh.count() <= 0)
    return InvalidArgumentError("kafka: timeouts must be positive");
  Conf conf;
  return FillConf(conf, o, {});
}

Result<std::unique_ptr<BackendLink>> MakeLink(LinkEnv env,
                                              KafkaOptions options) {
  if (env.base == nullptr)
    return InvalidArgumentError("kafka: MakeLink needs an event_base");
  Status s = Validate(options);
  if (!s.ok()) return s;
  auto link = std::make_unique<LinkImpl>(std::move(env), std::move(options));
  s = link->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<BackendLink>(std::move(link));
}

}  // namespace evsse::kafka
