// evsse-loadgen: a single-threaded SSE load generator for evsse servers.
//
// It opens N subscribers over K topics ("t0".."t{K-1}", round-robin), waits
// until every one got its 200 and first bytes, publishes M events through the
// HTTP publish endpoint (round-robin over the topics, paced or as fast as
// acknowledged), and prints one JSON line: deliveries, loss and duplicates
// from the sequence numbers, publish-to-receive latency, and the server's
// CPU and RSS read from /proc when --server-pid is given. See bench/README.md.
#include <sys/types.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "loadgen_options.h"
#include "loop.h"
#include "proc_stats.h"
#include "publisher.h"
#include "subscriber.h"
#include "tls.h"

namespace evsse::bench {
namespace {

using Json = nlohmann::ordered_json;

// Round keeps `digits` decimals (dividing by a power of ten, so that the
// JSON shows 0.284 rather than 0.28400000000000003).
double Round(double x, int digits = 3) {
  const double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

// Percentile by nearest rank over a sorted vector.
uint32_t Percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// --event-histograms: latency buckets of 5 % width, bucket b holding
// [1.05^b, 1.05^(b+1)) µs (b 0 also holds 0 µs); 480 buckets reach past
// 10^10 µs.
constexpr double kBucketRatio = 1.05;
constexpr size_t kBuckets = 480;
size_t Bucket(int64_t us) {
  if (us <= 1) return 0;
  auto b = static_cast<size_t>(std::log(static_cast<double>(us)) /
                               std::log(kBucketRatio));
  return std::min(b, kBuckets - 1);
}

class LoadGen final : public Subscriber::Observer, public Publisher::Observer {
 public:
  explicit LoadGen(Options o) : o_(std::move(o)) {}
  int Run();

  void OnReady(Subscriber* s) override;
  void OnDelivery(Subscriber* s, uint64_t seq, int64_t sent_ns, int64_t recv_ns,
                  bool fresh) override;
  void OnGap(Subscriber* s) override;
  void OnEnded(Subscriber* s) override;
  void OnAck(uint64_t seq, int status, std::string_view body) override;
  void OnPublisherError(const std::string& what) override;

 private:
  bool RunUntil(const char* phase, const std::function<bool(int64_t)>& done);
  void StartConnects();
  void PumpReconnects(int64_t now);
  void ScheduleReconnect(Subscriber* s, int64_t now);
  void PumpPublish();
  int PollTimeoutMs(int64_t now) const;
  void BuildSubscribeRequests(const std::string& last_event_id);
  const std::string& PublishRequest(uint64_t g, int64_t now);
  void Finish(Subscriber* s, int64_t now);
  ProcSample Server() const {
    return o_.server_pid > 0 ? SampleProcess(o_.server_pid) : ProcSample();
  }
  ProcSample Redis() const {
    return o_.redis_pid > 0 ? SampleProcess(o_.redis_pid) : ProcSample();
  }
  bool nchan() const { return o_.target == "nchan"; }
  bool SampleUnread(int64_t now);
  int DeferredReceiveBuffer() const;
  Json Report() const;
  int Error(const std::string& error);

  Options o_;
  std::unique_ptr<TlsContext> tls_;  // --tls
  std::string first_tls_error_;
  Loop loop_;
  sockaddr_in addr_{};
  std::vector<sockaddr_in> nodes_;    // --ports (or --port alone)
  std::vector<sockaddr_in> sources_;  // --source-addrs
  // --reconnect: (when, subscriber index), soonest first.
  std::priority_queue<std::pair<int64_t, size_t>,
                      std::vector<std::pair<int64_t, size_t>>, std::greater<>>
      reconnect_due_;
  std::mt19937_64 rng_{std::random_device{}()};
  uint64_t n_disconnects_ = 0, n_reconnected_ = 0, n_reconnect_failures_ = 0;
  int64_t first_close_ns_ = 0, last_reconnect_ns_ = 0;
  std::vector<uint32_t> reconnect_ms_;  // stream lost -> streaming again
  size_t capacity_ = 0;                 // events per subscriber's topic
  size_t n_complete_ = 0;               // subscribers with all of them
  // --event-histograms, per event: latency buckets of the subscribers that
  // never lost their stream, and of those that did.
  std::vector<std::vector<uint32_t>> hist_stayed_, hist_moved_;
  int64_t start_ns_ = 0;
  int64_t deadline_ns_ = 0;
  const char* phase_ = "start";

  std::vector<std::unique_ptr<Subscriber>> subs_;
  std::vector<std::string> requests_;  // subscribe request per topic
  std::vector<uint8_t> ready_;         // per subscriber: got 200 + bytes
  std::vector<size_t> topic_live_;     // ready subscribers per topic
  bool connecting_ = false;
  size_t next_connect_ = 0;
  size_t handshakes_ = 0;
  size_t n_ready_ = 0, n_shed_ = 0, n_failed_ = 0, n_closed_ = 0;
  size_t n_finished_ = 0;  // replay: subscribers done (all events or gap)
  int first_failure_status_ = 0, first_failure_errno_ = 0;

  std::vector<std::unique_ptr<Publisher>> pubs_;
  bool publishing_ = false;
  size_t next_pub_ = 0;
  uint64_t next_seq_ = 0;
  std::string request_scratch_;
  std::vector<uint8_t> acked_;  // per event: 0 pending, 1 ok, 2 error
  uint64_t acks_ok_ = 0, acks_failed_ = 0;
  std::string first_id_, first_ack_error_, publisher_error_;

  uint64_t fresh_ = 0, duplicates_ = 0, gaps_ = 0, expected_live_ = 0;
  std::vector<uint32_t> latency_us_;
  // Per event: when it was sent, first and last received (fan-out spread).
  std::vector<int64_t> sent_ns_, first_recv_ns_, last_recv_ns_;
  int64_t pub_start_ns_ = 0, first_send_ns_ = 0, last_send_ns_ = 0;
  int64_t last_delivery_ns_ = 0, last_activity_ns_ = 0;
  int64_t connect_start_ns_ = 0, connect_done_ns_ = 0;
  // --defer-reads: bytes in the subscribers' receive queues, when that sum
  // last grew, when it was last sampled, and what arrived after the reads
  // resumed (must be 0: the server had finished).
  uint64_t unread_ = 0, late_bytes_ = 0;
  int64_t unread_grew_ns_ = 0, unread_sampled_ns_ = 0;
  int rcvbuf_ = 0;

  ProcSample srv_before_, srv_connected_, srv_after_;
  ProcSample redis_connected_, redis_after_;
  double self_cpu_start_ = 0, self_cpu_phase_ = 0, self_cpu_end_ = 0;
  double machine_start_ = 0, machine_end_ = 0;
};

void LoadGen::BuildSubscribeRequests(const std::string& last_event_id) {
  requests_.clear();
  for (size_t k = 0; k < o_.topics; ++k) {
    std::string r =
        "GET /events?topic=t" + std::to_string(k) +
        " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
        "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n";
    if (!last_event_id.empty()) r += "Last-Event-ID: " + last_event_id + "\r\n";
    requests_.push_back(r + "\r\n");
  }
}

const std::string& LoadGen::PublishRequest(uint64_t g, int64_t now) {
  size_t k = g % o_.topics;
  char head[96];
  int n = std::snprintf(head, sizeof head, "s=%llu k=%zu t=%lld ",
                        static_cast<unsigned long long>(g / o_.topics), k,
                        static_cast<long long>(now));
  std::string data(head, static_cast<size_t>(n));
  if (data.size() < o_.size) data.append(o_.size - data.size(), 'x');
  std::string& r = request_scratch_;
  r = "POST /publish?topic=t" + std::to_string(k) +
      " HTTP/1.1\r\nHost: " + o_.host +
      "\r\nContent-Type: text/plain\r\nContent-Length: " +
      std::to_string(data.size()) + "\r\n";
  // nchan answers in JSON (with the message id) only when asked to.
  if (nchan()) r += "Accept: application/json\r\n";
  if (!o_.token.empty()) r += "Authorization: Bearer " + o_.token + "\r\n";
  r += "\r\n";
  r += data;
  return r;
}

void LoadGen::StartConnects() {
  while (connecting_ && next_connect_ < subs_.size() &&
         handshakes_ < o_.connect_window) {
    Subscriber* s = subs_[next_connect_++].get();
    ++handshakes_;
    if (!s->Start(nodes_[s->node], &requests_[s->topic()])) {
      --handshakes_;
      ++n_failed_;
      if (!first_failure_errno_) first_failure_errno_ = s->error_number();
      if (first_tls_error_.empty()) first_tls_error_ = s->tls_error();
      if (o_.resume) ++n_finished_;
    }
  }
}

// ScheduleReconnect: after the server's retry (3 s, an EventSource's
// default, when it sent none), to another node picked at random.
void LoadGen::ScheduleReconnect(Subscriber* s, int64_t now) {
  if (nodes_.size() > 1) {
    size_t n = rng_() % (nodes_.size() - 1);
    s->node = n >= s->node ? n + 1 : n;
  }
  uint64_t ms = s->retry_ms() > 0 ? s->retry_ms() : 3000;
  reconnect_due_.emplace(now + static_cast<int64_t>(ms) * 1'000'000,
                         s->index());
}

void LoadGen::PumpReconnects(int64_t now) {
  while (!reconnect_due_.empty() && reconnect_due_.top().first <= now) {
    Subscriber* s = subs_[reconnect_due_.top().second].get();
    reconnect_due_.pop();
    s->Reset();
    s->resume_request = requests_[s->topic()];
    if (!s->last_event_id().empty()) {
      s->resume_request.insert(s->resume_request.size() - 2,
                               "Last-Event-ID: " + s->last_event_id() + "\r\n");
    }
    ++handshakes_;
    if (!s->Start(nodes_[s->node], &s->resume_request)) {
      --handshakes_;
      ++n_reconnect_failures_;
      ScheduleReconnect(s, now);
    }
  }
}

void LoadGen::PumpPublish() {
  while (publishing_ && next_seq_ < o_.events) {
    int64_t now = NowNs();
    if (o_.rate > 0) {
      auto due =
          pub_start_ns_ +
          static_cast<int64_t>(static_cast<double>(next_seq_) * 1e9 / o_.rate);
      if (now < due) return;
    }
    Publisher* p = nullptr;
    for (size_t i = 0; i < pubs_.size() && !p; ++i) {
      Publisher* c = pubs_[(next_pub_ + i) % pubs_.size()].get();
      if (!c->failed() && c->in_flight() < o_.pipeline) {
        p = c;
        next_pub_ = (next_pub_ + i + 1) % pubs_.size();
      }
    }
    if (!p) return;
    if (next_seq_ == 0) first_send_ns_ = now;
    last_send_ns_ = now;
    sent_ns_[next_seq_] = now;
    p->Send(next_seq_, PublishRequest(next_seq_, now));
    ++next_seq_;
  }
}

int LoadGen::PollTimeoutMs(int64_t now) const {
  int64_t ms = 20;
  bool can_send = false;
  for (const auto& p : pubs_)
    can_send = can_send || (!p->failed() && p->in_flight() < o_.pipeline);
  // Behind schedule with every pipeline full: wait for an ack, not spin.
  if (publishing_ && o_.rate > 0 && next_seq_ < o_.events && can_send) {
    auto due =
        pub_start_ns_ +
        static_cast<int64_t>(static_cast<double>(next_seq_) * 1e9 / o_.rate);
    ms = std::clamp<int64_t>((due - now + 999999) / 1000000, 0, 20);
  }
  if (o_.defer_reads && publishing_) ms = std::min<int64_t>(ms, 5);
  if (!reconnect_due_.empty()) {
    int64_t due = reconnect_due_.top().first;
    ms = std::clamp<int64_t>((due - now + 999999) / 1000000, 0, ms);
  }
  return static_cast<int>(ms);
}

bool LoadGen::RunUntil(const char* phase,
                       const std::function<bool(int64_t)>& done) {
  phase_ = phase;
  for (;;) {
    StartConnects();
    PumpReconnects(NowNs());
    PumpPublish();
    int64_t now = NowNs();
    if (!publisher_error_.empty()) return false;
    if (done(now)) return true;
    if (now >= deadline_ns_) return false;
    loop_.Poll(PollTimeoutMs(now));
  }
}

void LoadGen::OnReady(Subscriber* s) {
  ready_[s->index()] = 1;
  ++n_ready_;
  --handshakes_;
  ++topic_live_[s->topic()];
  last_activity_ns_ = NowNs();
  if (s->disconnects > 0) {
    ++n_reconnected_;
    last_reconnect_ns_ = last_activity_ns_;
    reconnect_ms_.push_back(
        static_cast<uint32_t>((last_activity_ns_ - s->closed_ns) / 1000000));
  }
  if (o_.resume && s->expected == 0) Finish(s, last_activity_ns_);
}

void LoadGen::Finish(Subscriber* s, int64_t now) {
  if (s->done_ns != 0) return;
  s->done_ns = now;
  ++n_finished_;
}

void LoadGen::OnDelivery(Subscriber* s, uint64_t seq, int64_t sent_ns,
                         int64_t recv_ns, bool fresh) {
  last_delivery_ns_ = last_activity_ns_ = recv_ns;
  if (!fresh) {
    ++duplicates_;
    return;
  }
  ++fresh_;
  if (s->unique() == capacity_) ++n_complete_;
  if (o_.resume) {
    if (s->unique() >= s->expected) Finish(s, recv_ns);
    return;
  }
  if (o_.defer_reads) return;  // read after the window: no latency
  uint64_t g = seq * o_.topics + s->topic();
  if (g >= o_.events) return;
  if (o_.subscribe_only && sent_ns_[g] == 0) sent_ns_[g] = sent_ns;
  if (o_.event_histograms) {
    auto& h = s->disconnects == 0 ? hist_stayed_ : hist_moved_;
    ++h[g][Bucket((recv_ns - sent_ns) / 1000)];
  }
  if (first_recv_ns_[g] == 0 || recv_ns < first_recv_ns_[g])
    first_recv_ns_[g] = recv_ns;
  last_recv_ns_[g] = std::max(last_recv_ns_[g], recv_ns);
  int64_t us = (recv_ns - sent_ns) / 1000;
  latency_us_.push_back(
      static_cast<uint32_t>(std::clamp<int64_t>(us, 0, UINT32_MAX)));
}

void LoadGen::OnGap(Subscriber* s) {
  ++gaps_;
  if (o_.resume) Finish(s, NowNs());
}

void LoadGen::OnEnded(Subscriber* s) {
  if (o_.reconnect && (ready_[s->index()] || s->disconnects > 0)) {
    // A lost stream, or a failed attempt to get it back: try again.
    int64_t now = NowNs();
    last_activity_ns_ = now;
    if (ready_[s->index()]) {
      ready_[s->index()] = 0;
      --n_ready_;
      --topic_live_[s->topic()];
      ++n_disconnects_;
      ++s->disconnects;
      s->closed_ns = now;
      if (first_close_ns_ == 0) first_close_ns_ = now;
    } else {
      --handshakes_;
      ++n_reconnect_failures_;
    }
    ScheduleReconnect(s, now);
    return;
  }
  if (ready_[s->index()]) {
    ++n_closed_;
    --topic_live_[s->topic()];
    if (first_tls_error_.empty()) first_tls_error_ = s->tls_error();
  } else {
    --handshakes_;
    if (s->outcome() == Subscriber::Outcome::kShed) {
      ++n_shed_;
    } else {
      ++n_failed_;
      if (!first_failure_status_) first_failure_status_ = s->http_status();
      if (!first_failure_errno_) first_failure_errno_ = s->error_number();
      if (first_tls_error_.empty()) first_tls_error_ = s->tls_error();
    }
  }
  if (o_.resume) Finish(s, NowNs());
}

void LoadGen::OnAck(uint64_t seq, int status, std::string_view body) {
  last_activity_ns_ = NowNs();
  // nchan acknowledges with 201 (subscribers present) or 202 (none).
  bool ok = nchan() ? status >= 200 && status < 300 : status == 200;
  if (!ok) {
    acked_[seq] = 2;
    ++acks_failed_;
    if (first_ack_error_.empty())
      first_ack_error_ = std::to_string(status) + " " + std::string(body);
    return;
  }
  acked_[seq] = 1;
  ++acks_ok_;
  expected_live_ += topic_live_[seq % o_.topics];
  if (seq == 0) {
    Json j = Json::parse(body.begin(), body.end(), nullptr, false);
    const char* key = nchan() ? "last_message_id" : "id";
    if (j.is_object() && j[key].is_string()) first_id_ = j[key];
  }
}

void LoadGen::OnPublisherError(const std::string& what) {
  if (publisher_error_.empty()) publisher_error_ = what;
}

// SampleUnread sums the subscribers' unread bytes every 5 ms and notes
// when the sum grew; true once a sample was taken since the publishes
// began.
bool LoadGen::SampleUnread(int64_t now) {
  if (now - unread_sampled_ns_ < 5'000'000) return unread_sampled_ns_ != 0;
  uint64_t sum = 0;
  for (const auto& s : subs_) sum += s->Unread();
  if (sum > unread_) {
    unread_ = sum;
    unread_grew_ns_ = now;
  }
  unread_sampled_ns_ = now;
  return true;
}

// DeferredReceiveBuffer: room for every event of a subscriber's topic
// (data, id and chunk framing, twice over for the kernel's accounting),
// within net.core.rmem_max.
int LoadGen::DeferredReceiveBuffer() const {
  uint64_t per_sub = (o_.events + o_.topics - 1) / o_.topics * (o_.size + 96);
  uint64_t want = std::max<uint64_t>(2 * per_sub, 256 * 1024);
  uint64_t max = 0;
  if (FILE* f = std::fopen("/proc/sys/net/core/rmem_max", "r")) {
    unsigned long long v = 0;
    if (std::fscanf(f, "%llu", &v) == 1) max = v;
    std::fclose(f);
  }
  if (max > 0) want = std::min(want, max);
  return static_cast<int>(std::min<uint64_t>(want, INT32_MAX));
}

int LoadGen::Error(const std::string& error) {
  Json j = Report();
  j["error"] = error;
  j["phase"] = phase_;
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 3;
}

int LoadGen::Run() {
  RaiseFdLimit();
  if (!ResolveIpv4(o_.host, o_.port, &addr_)) {
    std::printf("{\"name\":%s,\"error\":\"bad --host/--port\"}\n",
                Json(o_.name).dump().c_str());
    return 2;
  }
  nodes_.push_back(addr_);
  if (!o_.ports.empty()) {
    nodes_.clear();
    for (int port : o_.ports) {
      nodes_.emplace_back();
      ResolveIpv4(o_.host, port, &nodes_.back());
    }
  }
  for (const std::string& a : o_.source_addrs) {
    sources_.emplace_back();
    // Port 0: IP_BIND_ADDRESS_NO_PORT picks it at connect.
    if (!ResolveIpv4(a, 1, &sources_.back())) {
      std::printf("{\"name\":%s,\"error\":\"bad --source-addrs\"}\n",
                  Json(o_.name).dump().c_str());
      return 2;
    }
    sources_.back().sin_port = 0;
  }
  start_ns_ = NowNs();
  deadline_ns_ = start_ns_ + static_cast<int64_t>(o_.timeout_s * 1e9);
  self_cpu_start_ = SelfCpuSeconds();
  machine_start_ = MachineBusySeconds();
  srv_before_ = Server();
  size_t capacity = o_.idle_only ? 0 : (o_.events + o_.topics - 1) / o_.topics;
  capacity_ = capacity;
  if (o_.defer_reads) rcvbuf_ = DeferredReceiveBuffer();
  if (o_.tls) {
    std::string err;
    tls_.reset(TlsContext::Create(
        o_.cacert, o_.tls_name.empty() ? o_.host : o_.tls_name, &err));
    if (!tls_) return Error("--tls: " + err);
  }
  ready_.assign(o_.subscribers, 0);
  topic_live_.assign(o_.topics, 0);
  // --subscribe-only: another process publishes every event.
  acked_.assign(o_.events, o_.subscribe_only ? 1 : 0);
  sent_ns_.assign(o_.events, 0);
  if (o_.event_histograms) {
    hist_stayed_.assign(o_.events, std::vector<uint32_t>(kBuckets, 0));
    hist_moved_.assign(o_.events, std::vector<uint32_t>(kBuckets, 0));
  }
  if (!o_.resume) {
    first_recv_ns_.assign(o_.events, 0);
    last_recv_ns_.assign(o_.events, 0);
  }
  if (!o_.idle_only)
    latency_us_.reserve(
        std::min<size_t>(o_.subscribers * capacity, size_t{64} << 20));
  for (size_t i = 0; i < o_.subscribers; ++i) {
    subs_.push_back(
        std::make_unique<Subscriber>(&loop_, this, i, i % o_.topics, capacity));
    if (nchan()) subs_.back()->AcceptIdentityBody();
    if (o_.defer_reads) subs_.back()->SetReceiveBuffer(rcvbuf_);
    if (tls_) subs_.back()->UseTls(tls_.get());
    subs_.back()->node = i % nodes_.size();
    if (!sources_.empty())
      subs_.back()->SetSource(&sources_[i % sources_.size()]);
  }
  if (!o_.idle_only && !o_.subscribe_only) {
    for (size_t i = 0; i < o_.publishers; ++i) {
      pubs_.push_back(std::make_unique<Publisher>(&loop_, this));
      std::string err;
      if (!pubs_.back()->Connect(addr_, tls_.get(), &err)) return Error(err);
    }
  }
  auto acked_all = [this] { return acks_ok_ + acks_failed_ >= o_.events; };
  auto connected_all = [this] {
    return next_connect_ == subs_.size() && handshakes_ == 0;
  };

  if (o_.resume) {
    // Publish with nobody subscribed, then resume from the first event.
    publishing_ = true;
    pub_start_ns_ = NowNs();
    if (!RunUntil("publish", [&](int64_t) { return acked_all(); }))
      return Error(publisher_error_.empty() ? "timeout" : publisher_error_);
    publishing_ = false;
    if (first_id_.empty()) return Error("the first publish returned no id");
    for (auto& s : subs_) {
      for (uint64_t g = s->topic(); g < o_.events; g += o_.topics)
        if (g > 0 && acked_[g] == 1) ++s->expected;
    }
    BuildSubscribeRequests(first_id_);
    srv_connected_ = Server();
    redis_connected_ = Redis();
    self_cpu_phase_ = SelfCpuSeconds();
    connecting_ = true;
    connect_start_ns_ = NowNs();
    bool ok = RunUntil("replay", [&](int64_t now) {
      if (!connected_all()) return false;
      return n_finished_ >= subs_.size() ||
             now - last_activity_ns_ > static_cast<int64_t>(o_.settle_s * 1e9);
    });
    connect_done_ns_ = NowNs();
    if (!ok) return Error("timeout");
  } else {
    BuildSubscribeRequests("");
    connecting_ = true;
    connect_start_ns_ = NowNs();
    if (!RunUntil("connect", [&](int64_t) { return connected_all(); }))
      return Error("timeout");
    connect_done_ns_ = NowNs();
    if (o_.warmup_s > 0) {
      // A Redis-backed server may need time to subscribe to its topics.
      int64_t until = NowNs() + static_cast<int64_t>(o_.warmup_s * 1e9);
      if (!RunUntil("warmup", [&](int64_t now) { return now >= until; }))
        return Error("timeout");
    }
    srv_connected_ = Server();
    redis_connected_ = Redis();
    self_cpu_phase_ = SelfCpuSeconds();
    if (o_.subscribe_only) {
      if (!o_.ready_file.empty()) {
        if (FILE* f = std::fopen(o_.ready_file.c_str(), "w")) {
          std::fprintf(f, "%zu\n", n_ready_);
          std::fclose(f);
        }
      }
      last_activity_ns_ = NowNs();
      bool ok = RunUntil("subscribe", [&](int64_t now) {
        if (!reconnect_due_.empty() || handshakes_ > 0) return false;
        if (n_complete_ >= subs_.size()) return true;
        return fresh_ > 0 && now - last_activity_ns_ >
                                 static_cast<int64_t>(o_.settle_s * 1e9);
      });
      if (!ok) return Error("timeout");
    } else if (o_.idle_only) {
      int64_t until =
          connect_done_ns_ + static_cast<int64_t>(o_.idle_wait_s * 1e9);
      if (!RunUntil("idle", [&](int64_t now) { return now >= until; }))
        return Error("timeout");
    } else if (o_.defer_reads) {
      for (auto& s : subs_) s->Pause();
      publishing_ = true;
      pub_start_ns_ = unread_grew_ns_ = NowNs();
      // The server is done when every publish is acknowledged and the
      // receive queues stopped growing (sampled every 5 ms).
      bool ok = RunUntil("publish", [&](int64_t now) {
        return SampleUnread(now) && acked_all() &&
               now - unread_grew_ns_ >
                   static_cast<int64_t>(std::min(o_.settle_s, 0.3) * 1e9);
      });
      if (!ok)
        return Error(publisher_error_.empty() ? "timeout" : publisher_error_);
      srv_after_ = Server();
      redis_after_ = Redis();
      self_cpu_end_ = SelfCpuSeconds();
      machine_end_ = MachineBusySeconds();
      uint64_t before = 0, after = 0;
      for (auto& s : subs_) before += s->bytes_read();
      for (auto& s : subs_) s->Resume();
      last_activity_ns_ = NowNs();
      ok = RunUntil("drain", [&](int64_t now) {
        return fresh_ >= expected_live_ ||
               now - last_activity_ns_ >
                   static_cast<int64_t>(o_.settle_s * 1e9);
      });
      for (auto& s : subs_) after += s->bytes_read();
      late_bytes_ = after - before > unread_ ? after - before - unread_ : 0;
      if (!ok) return Error("timeout");
    } else {
      publishing_ = true;
      pub_start_ns_ = last_activity_ns_ = NowNs();
      bool ok = RunUntil("publish", [&](int64_t now) {
        if (!acked_all()) return false;
        return fresh_ >= expected_live_ ||
               now - last_activity_ns_ >
                   static_cast<int64_t>(o_.settle_s * 1e9);
      });
      if (!ok)
        return Error(publisher_error_.empty() ? "timeout" : publisher_error_);
    }
  }
  if (!o_.defer_reads) {
    srv_after_ = Server();
    redis_after_ = Redis();
    self_cpu_end_ = SelfCpuSeconds();
    machine_end_ = MachineBusySeconds();
  }
  Json j = Report();
  for (auto& s : subs_) s->Close();
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
}

Json LoadGen::Report() const {
  const int64_t now = NowNs();
  const char* mode = o_.idle_only ? "idle" : o_.resume ? "resume" : "live";
  Json j;
  j["name"] = o_.name;
  j["mode"] = mode;
  j["target"] = o_.target;
  j["tls"] = o_.tls;
  j["subscribers"] = o_.subscribers;
  j["topics"] = o_.topics;
  j["subscribers_ready"] = n_ready_;
  j["subscribers_shed"] = n_shed_;
  j["subscribers_failed"] = n_failed_;
  if (first_failure_status_) j["first_failure_status"] = first_failure_status_;
  if (first_failure_errno_) j["first_failure_errno"] = first_failure_errno_;
  if (!first_tls_error_.empty()) j["first_tls_error"] = first_tls_error_;
  j["subscribers_closed_by_server"] = n_closed_;
  if (connect_start_ns_ != 0)
    j["connect_s"] = Round(
        ((connect_done_ns_ ? connect_done_ns_ : now) - connect_start_ns_) /
        1e9);

  // Loss and duplicates per subscriber per topic, from sequence numbers.
  uint64_t expected = 0, lost = 0, reordered = 0, misrouted = 0;
  if (!o_.idle_only) {
    for (const auto& s : subs_) {
      for (uint64_t g = s->topic(), q = 0; g < o_.events; g += o_.topics, ++q) {
        if (acked_[g] != 1 || (o_.resume && g == 0)) continue;
        ++expected;
        if (!s->got(q)) ++lost;
      }
      reordered += s->reordered();
      misrouted += s->misrouted();
    }
  }
  if (o_.idle_only) {
    j["lost"] = 0;
    j["duplicated"] = 0;
  } else {
    j["events"] = o_.events;
    j["events_acked"] = acks_ok_;
    j["publish_errors"] = acks_failed_;
    if (!first_ack_error_.empty()) j["first_publish_error"] = first_ack_error_;
    j["rate"] = o_.rate;
    j["size"] = o_.size;
    j["deliveries_expected"] = expected;
    j["deliveries_received"] = fresh_;
    j["lost"] = lost;
    j["duplicated"] = duplicates_;
    j["reordered"] = reordered;
    j["misrouted"] = misrouted;
    j["gaps"] = gaps_;
  }

  double window_s = 0;
  if (o_.resume) {
    // Replay: from the first resuming connect to the last replayed event.
    window_s = fresh_ > 0 ? (last_delivery_ns_ - connect_start_ns_) / 1e9 : 0;
    std::vector<uint32_t> catchup;
    int64_t all_done = 0;
    for (const auto& s : subs_) {
      all_done = std::max(all_done, s->done_ns);
      if (s->done_ns && !s->gap() && s->unique() >= s->expected)
        catchup.push_back(
            static_cast<uint32_t>((s->done_ns - s->connect_ns()) / 1000));
    }
    std::sort(catchup.begin(), catchup.end());
    j["replay_catchup_ms_p50"] = Round(Percentile(catchup, 0.5) / 1e3);
    j["replay_catchup_ms_p99"] = Round(Percentile(catchup, 0.99) / 1e3);
    j["replay_catchup_ms_max"] = Round(Percentile(catchup, 1.0) / 1e3);
    j["replay_subscribers_complete"] = catchup.size();
    j["replay_all_done_s"] = n_finished_ >= subs_.size()
                                 ? Round((all_done - connect_start_ns_) / 1e9)
                                 : -1.0;
  } else if (o_.defer_reads && fresh_ > 0) {
    // From the first publish to the last growth of the receive queues.
    window_s = (unread_grew_ns_ - first_send_ns_) / 1e9;
    j["reads_deferred"] = true;
    j["receive_buffer_bytes"] = rcvbuf_;
    j["deferred_bytes"] = unread_;
    // Bytes that reached the subscribers only after the window: the server
    // was not done (a receive queue was full), so the window is wrong.
    j["late_bytes"] = late_bytes_;
    if (late_bytes_ > 0)
      j["error"] =
          "bytes arrived after the window: raise the receive "
          "buffers or lower --events";
  } else if (!o_.idle_only && fresh_ > 0) {
    window_s = (last_delivery_ns_ - first_send_ns_) / 1e9;
  }
  if (!o_.idle_only) {
    j["delivery_window_s"] = Round(window_s);
    j["deliveries_per_s"] = window_s > 0 ? Round(fresh_ / window_s, 0) : 0.0;
    j["publish_rate_achieved"] =
        o_.events > 1 && last_send_ns_ > first_send_ns_
            ? Round((std::min<uint64_t>(next_seq_, o_.events) - 1) /
                        ((last_send_ns_ - first_send_ns_) / 1e9),
                    1)
            : 0.0;
  }
  if (!o_.idle_only && !o_.resume && !o_.defer_reads) {
    std::vector<uint32_t> lat = latency_us_;
    std::sort(lat.begin(), lat.end());
    j["latency_us_p50"] = Percentile(lat, 0.5);
    j["latency_us_p99"] = Percentile(lat, 0.99);
    j["latency_us_max"] = Percentile(lat, 1.0);
    // Per event: publish to its first subscriber, and first to last
    // subscriber (how long one event takes to reach all of its topic).
    std::vector<uint32_t> first, spread;
    for (size_t g = 0; g < first_recv_ns_.size(); ++g) {
      if (first_recv_ns_[g] == 0) continue;
      first.push_back(
          static_cast<uint32_t>((first_recv_ns_[g] - sent_ns_[g]) / 1000));
      spread.push_back(
          static_cast<uint32_t>((last_recv_ns_[g] - first_recv_ns_[g]) / 1000));
    }
    std::sort(first.begin(), first.end());
    std::sort(spread.begin(), spread.end());
    j["first_delivery_us_p50"] = Percentile(first, 0.5);
    j["first_delivery_us_p99"] = Percentile(first, 0.99);
    j["fanout_spread_us_p50"] = Percentile(spread, 0.5);
    j["fanout_spread_us_p99"] = Percentile(spread, 0.99);
  }
  if (o_.subscribe_only) j["subscribers_complete"] = n_complete_;
  if (nodes_.size() > 1) {
    // Streaming subscribers per node of --ports, now.
    std::vector<size_t> per_node(nodes_.size(), 0);
    for (const auto& s : subs_)
      if (ready_[s->index()]) ++per_node[s->node];
    j["subscribers_per_node"] = per_node;
  }
  if (o_.reconnect) {
    std::vector<uint32_t> ms = reconnect_ms_;
    std::sort(ms.begin(), ms.end());
    j["disconnects"] = n_disconnects_;
    j["reconnects"] = n_reconnected_;
    j["reconnect_failures"] = n_reconnect_failures_;
    j["reconnect_ms_p50"] = Percentile(ms, 0.5);
    j["reconnect_ms_p99"] = Percentile(ms, 0.99);
    j["reconnect_ms_max"] = Percentile(ms, 1.0);
    // CLOCK_MONOTONIC, comparable across the processes of one machine.
    j["first_close_ns"] = first_close_ns_;
    j["last_reconnect_ns"] = last_reconnect_ns_;
  }
  if (o_.event_histograms) {
    // Per event: [send, first receive, last receive] (CLOCK_MONOTONIC ns)
    // and the non-empty latency buckets [bucket, count] of subscribers that
    // never lost their stream ("stayed") and of those that did ("moved").
    Json events = Json::array();
    for (size_t g = 0; g < o_.events; ++g) {
      Json e;
      e["g"] = g;
      e["sent_ns"] = sent_ns_[g];
      e["first_recv_ns"] = first_recv_ns_.empty() ? 0 : first_recv_ns_[g];
      e["last_recv_ns"] = last_recv_ns_.empty() ? 0 : last_recv_ns_[g];
      for (auto* h : {&hist_stayed_, &hist_moved_}) {
        Json b = Json::array();
        for (size_t i = 0; i < kBuckets; ++i)
          if ((*h)[g][i] > 0) b.push_back({i, (*h)[g][i]});
        e[h == &hist_stayed_ ? "stayed" : "moved"] = b;
      }
      events.push_back(e);
    }
    j["bucket_ratio"] = kBucketRatio;
    j["event_detail"] = events;
  }
  j["wall_s"] = Round((now - start_ns_) / 1e9);
  j["loadgen_cpu_s"] = Round(
      (self_cpu_end_ ? self_cpu_end_ : SelfCpuSeconds()) - self_cpu_start_);
  if (o_.server_pid > 0) {
    ProcSample after = srv_after_.ok ? srv_after_ : Server();
    j["server_pid"] = o_.server_pid;
    j["server_cpu_s"] = Round(after.cpu_s - srv_before_.cpu_s, 2);
    if (srv_connected_.ok) {
      j["server_cpu_connect_s"] =
          Round(srv_connected_.cpu_s - srv_before_.cpu_s, 2);
      if (!o_.idle_only) {
        double pub_cpu = after.cpu_s - srv_connected_.cpu_s;
        j[o_.resume ? "server_cpu_replay_s" : "server_cpu_publish_s"] =
            Round(pub_cpu, 2);
        j["server_cpu_s_per_million_deliveries"] =
            fresh_ > 0 ? Round(pub_cpu / fresh_ * 1e6) : 0.0;
        // How the server writes: write(2)/writev(2) calls and bytes per
        // delivery (over TLS: records and their overhead).
        if (fresh_ > 0 && after.write_calls >= 0 &&
            srv_connected_.write_calls >= 0) {
          j["server_write_calls_per_delivery"] = Round(
              double(after.write_calls - srv_connected_.write_calls) / fresh_,
              4);
          j["server_write_bytes_per_delivery"] = Round(
              double(after.write_bytes - srv_connected_.write_bytes) / fresh_,
              1);
        }
        j["loadgen_cpu_publish_s"] =
            Round((self_cpu_end_ ? self_cpu_end_ : SelfCpuSeconds()) -
                  self_cpu_phase_);
      }
    }
    j["server_rss_before_kb"] = srv_before_.rss_bytes / 1024;
    j["server_rss_connected_kb"] = srv_connected_.rss_bytes / 1024;
    j["server_rss_after_kb"] = after.rss_bytes / 1024;
    if (o_.idle_only && n_ready_ > 0)
      j["server_rss_per_subscriber_bytes"] =
          (after.rss_bytes - srv_before_.rss_bytes) /
          static_cast<int64_t>(n_ready_);
  }
  if (o_.redis_pid > 0 && redis_connected_.ok && redis_after_.ok) {
    double redis_s = redis_after_.cpu_s - redis_connected_.cpu_s;
    j["redis_cpu_publish_s"] = Round(redis_s, 2);
    j["redis_cpu_us_per_publish"] =
        acks_ok_ > 0 ? Round(redis_s / acks_ok_ * 1e6, 1) : 0.0;
  }
  // The machine is shared (2 cores): CPU used by neither the server nor the
  // load generator competed with them.
  double machine =
      (machine_end_ ? machine_end_ : MachineBusySeconds()) - machine_start_;
  j["machine_busy_cpu_s"] = Round(machine, 2);
  if (o_.server_pid > 0)
    j["other_cpu_s"] = Round(machine - j["server_cpu_s"].get<double>() -
                                 j["loadgen_cpu_s"].get<double>(),
                             2);
  return j;
}

}  // namespace
}  // namespace evsse::bench

int main(int argc, char** argv) {
  evsse::bench::Options o;
  if (!evsse::bench::ParseArgs(argc, argv, &o)) {
    std::fputs(evsse::bench::kUsage, stderr);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  evsse::bench::LoadGen gen(o);
  return gen.Run();
}
