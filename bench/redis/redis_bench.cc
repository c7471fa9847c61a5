// evsse-redis-bench: the multi-node benchmarks of evsse::redis. It reuses
// the load generator's connections (bench/subscriber.h, bench/publisher.h)
// but publishes to one node and subscribes on another, which evsse-loadgen
// cannot do (it has a single --port).
//
//   fanout  N subscribers on --sub-port, M events published on --pub-port
//           (paced at --rate, or as fast as acknowledged): publish-to-receive
//           latency, deliveries/s, loss and duplicates.
//   replay  M + 1 events published on --pub-port with nobody subscribed,
//           then N subscribers resume on --sub-port from the first event's
//           id: the time until every one got all M others.
//
// --pid NAME=PID (repeatable) reports each process's CPU seconds over the
// measured phase (and per published event). One JSON line on stdout.
// Single-threaded; every phase is bounded by --timeout-s.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "loop.h"
#include "proc_stats.h"
#include "publisher.h"
#include "subscriber.h"

namespace evsse::bench {
namespace {

using Json = nlohmann::ordered_json;

const char kUsage[] =
    "usage: evsse-redis-bench --mode fanout|replay --pub-port A --sub-port B\n"
    "  [--host 127.0.0.1] [--topic T] [--subscribers N] [--events M]\n"
    "  [--rate R] [--pipeline D] [--size BYTES] [--connect-window W]\n"
    "  [--pid NAME=PID]... [--redis-unix PATH] [--timeout-s T]\n"
    "  [--settle-s S] [--name S]\n";

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  int pub_port = 0, sub_port = 0;
  std::string topic = "t0";
  size_t subscribers = 100;
  size_t events = 100;
  double rate = 0;
  size_t pipeline = 4;
  size_t size = 64;
  size_t connect_window = 100;
  std::vector<std::pair<std::string, pid_t>> pids;
  std::string redis_unix;  // INFO cpu from this Redis (µs resolution)
  double timeout_s = 120;
  double settle_s = 3;
  std::string name = "scenario";
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--mode") {
      o->mode = v;
    } else if (a == "--host") {
      o->host = v;
    } else if (a == "--pub-port") {
      o->pub_port = std::atoi(v.c_str());
    } else if (a == "--sub-port") {
      o->sub_port = std::atoi(v.c_str());
    } else if (a == "--topic") {
      o->topic = v;
    } else if (a == "--subscribers") {
      o->subscribers = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--events") {
      o->events = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--rate") {
      o->rate = std::atof(v.c_str());
    } else if (a == "--pipeline") {
      o->pipeline = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--size") {
      o->size = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--connect-window") {
      o->connect_window = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--pid") {
      size_t eq = v.find('=');
      if (eq == std::string::npos) return false;
      o->pids.emplace_back(v.substr(0, eq),
                           static_cast<pid_t>(std::atoi(v.c_str() + eq + 1)));
    } else if (a == "--redis-unix") {
      o->redis_unix = v;
    } else if (a == "--timeout-s") {
      o->timeout_s = std::atof(v.c_str());
    } else if (a == "--settle-s") {
      o->settle_s = std::atof(v.c_str());
    } else if (a == "--name") {
      o->name = v;
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && (o->mode == "fanout" || o->mode == "replay") &&
         o->pub_port > 0 && o->sub_port > 0 && o->events > 0 &&
         o->pipeline > 0 && o->connect_window > 0 && o->rate >= 0;
}

double Round(double x, int digits = 3) {
  const double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

uint32_t Percentile(const std::vector<uint32_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// HttpGet fetches a small JSON document (the node's /stats), blocking.
Json HttpGet(const sockaddr_in& addr, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req =
        "GET " + path +
        " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) > 0) {
      char buf[4096];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        in.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  size_t body = in.find("\r\n\r\n");
  if (body == std::string::npos) return Json();
  return Json::parse(in.substr(body + 4), nullptr, false);
}

// RedisCpuSeconds returns used_cpu_sys + used_cpu_user of the Redis
// listening on unix socket `path` (INFO cpu; getrusage precision, where
// /proc's figures have 10 ms ticks), or -1.
double RedisCpuSeconds(const std::string& path) {
  if (path.empty()) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof a.sun_path) {
    if (fd >= 0) close(fd);
    return -1;
  }
  path.copy(a.sun_path, path.size());
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, "INFO cpu\r\n", 10, MSG_NOSIGNAL) == 10) {
    // A bulk reply: "$<len>\r\n<text>\r\n".
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
      in.append(buf, static_cast<size_t>(n));
      size_t eol = in.find("\r\n");
      if (in[0] == '$' && eol != std::string::npos &&
          in.size() >= eol + 2 + std::strtoull(in.c_str() + 1, nullptr, 10))
        break;
    }
  }
  close(fd);
  double total = 0;
  int found = 0;
  for (const char* key : {"used_cpu_sys:", "used_cpu_user:"}) {
    size_t at = in.find(std::string("\n") + key);
    if (at == std::string::npos) continue;
    total += std::atof(in.c_str() + at + 1 + std::strlen(key));
    ++found;
  }
  return found == 2 ? total : -1;
}

class Bench final : public Subscriber::Observer, public Publisher::Observer {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}
  int Run();

  void OnReady(Subscriber* s) override {
    ready_flags_[s->index()] = 1;
    ++ready_;
    --handshakes_;
    last_activity_ = NowNs();
  }
  void OnDelivery(Subscriber* s, uint64_t seq, int64_t sent_ns, int64_t recv_ns,
                  bool fresh) override;
  void OnGap(Subscriber* s) override { ++gaps_; }
  void OnEnded(Subscriber* s) override {
    if (!ready_flags_[s->index()]) --handshakes_;
    ++ended_;
  }
  void OnAck(uint64_t seq, int status, std::string_view body) override;
  void OnPublisherError(const std::string& what) override { error_ = what; }

 private:
  bool RunUntil(const char* phase, const std::function<bool()>& done);
  void StartConnects(const std::string& request);
  void PumpPublish();
  void Publish(uint64_t seq);
  std::string SubscribeRequest(const std::string& last_id) const;
  // SamplePids samples every --pid, then Redis's INFO cpu (last, as a
  // process named "redis_info" with only cpu_s set).
  std::vector<ProcSample> SamplePids() const;
  // MeasureRedisIdle samples Redis's own CPU over one quiet second (its
  // cron), so that AddCpu can also report the CPU net of it.
  void MeasureRedisIdle();
  void AddCpu(Json& j, const std::vector<ProcSample>& before,
              const std::vector<ProcSample>& after, size_t events,
              double seconds) const;
  int Fail(const std::string& why);

  Options o_;
  Loop loop_;
  sockaddr_in pub_addr_{}, sub_addr_{};
  int64_t deadline_ = 0, last_activity_ = 0;
  const char* phase_ = "start";
  std::string error_;

  std::vector<std::unique_ptr<Subscriber>> subs_;
  std::string request_;
  std::vector<uint8_t> ready_flags_;
  size_t next_connect_ = 0, handshakes_ = 0, ready_ = 0, ended_ = 0;
  uint64_t gaps_ = 0, fresh_ = 0, dups_ = 0;

  std::unique_ptr<Publisher> pub_;
  bool publishing_ = false;
  uint64_t next_seq_ = 0, end_seq_ = 0;  // publish seq in [next, end)
  int64_t pub_start_ = 0;
  uint64_t acks_ok_ = 0, acks_failed_ = 0;
  std::string first_error_, id0_;

  std::vector<int64_t> sent_, first_recv_, last_recv_;
  std::vector<uint32_t> latency_us_;
  int64_t first_send_ = 0, last_delivery_ = 0;
  std::vector<int64_t> done_ns_;  // replay: per subscriber
  double redis_idle_per_s_ = -1;  // Redis CPU s per s, nothing going on
};

std::string Bench::SubscribeRequest(const std::string& last_id) const {
  std::string r = "GET /events?topic=" + o_.topic +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Accept: text/event-stream\r\n";
  if (!last_id.empty()) r += "Last-Event-ID: " + last_id + "\r\n";
  return r + "\r\n";
}

void Bench::StartConnects(const std::string& request) {
  while (next_connect_ < subs_.size() && handshakes_ < o_.connect_window) {
    Subscriber* s = subs_[next_connect_++].get();
    ++handshakes_;
    if (!s->Start(sub_addr_, &request)) {
      --handshakes_;
      ++ended_;
    }
  }
}

void Bench::Publish(uint64_t seq) {
  int64_t now = NowNs();
  char head[96];
  int n = std::snprintf(head, sizeof head, "s=%llu k=0 t=%lld ",
                        static_cast<unsigned long long>(seq),
                        static_cast<long long>(now));
  std::string data(head, static_cast<size_t>(n));
  if (data.size() < o_.size) data.append(o_.size - data.size(), 'x');
  std::string r = "POST /publish?topic=" + o_.topic +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                  std::to_string(data.size()) + "\r\n\r\n" + data;
  if (seq < sent_.size()) sent_[seq] = now;
  if (first_send_ == 0) first_send_ = now;
  pub_->Send(seq, r);
}

void Bench::PumpPublish() {
  while (publishing_ && next_seq_ < end_seq_ &&
         pub_->in_flight() < o_.pipeline && !pub_->failed()) {
    if (o_.rate > 0) {
      int64_t due =
          pub_start_ + static_cast<int64_t>(static_cast<double>(next_seq_ - 1) *
                                            1e9 / o_.rate);
      if (NowNs() < due) return;
    }
    Publish(next_seq_++);
  }
}

void Bench::OnAck(uint64_t seq, int status, std::string_view body) {
  last_activity_ = NowNs();
  if (status != 200) {
    ++acks_failed_;
    if (first_error_.empty())
      first_error_ = std::to_string(status) + " " + std::string(body);
    return;
  }
  ++acks_ok_;
  if (seq == 0) {
    Json j = Json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_object() && j["id"].is_string()) id0_ = j["id"];
  }
}

void Bench::OnDelivery(Subscriber* s, uint64_t seq, int64_t sent_ns,
                       int64_t recv_ns, bool fresh) {
  last_activity_ = recv_ns;
  if (seq == 0) return;  // the warm-up / cursor event
  if (!fresh) {
    ++dups_;
    return;
  }
  ++fresh_;
  last_delivery_ = recv_ns;
  if (o_.mode == "replay") {
    if (s->unique() - (s->got(0) ? 1 : 0) >= o_.events)
      done_ns_[s->index()] = recv_ns;
    return;
  }
  if (first_recv_[seq] == 0) first_recv_[seq] = recv_ns;
  last_recv_[seq] = std::max(last_recv_[seq], recv_ns);
  latency_us_.push_back(static_cast<uint32_t>(
      std::clamp<int64_t>((recv_ns - sent_ns) / 1000, 0, UINT32_MAX)));
}

bool Bench::RunUntil(const char* phase, const std::function<bool()>& done) {
  phase_ = phase;
  for (;;) {
    if (!request_.empty()) StartConnects(request_);
    PumpPublish();
    if (!error_.empty()) return false;
    if (done()) return true;
    if (NowNs() > deadline_) return false;
    loop_.Poll(o_.rate > 0 ? 1 : 10);
  }
}

std::vector<ProcSample> Bench::SamplePids() const {
  std::vector<ProcSample> out;
  for (const auto& [name, pid] : o_.pids) out.push_back(SampleProcess(pid));
  ProcSample info;
  info.cpu_s = RedisCpuSeconds(o_.redis_unix);
  info.ok = info.cpu_s >= 0;
  out.push_back(info);
  return out;
}

void Bench::MeasureRedisIdle() {
  double b = RedisCpuSeconds(o_.redis_unix);
  if (b < 0) return;
  int64_t t0 = NowNs(), until = t0 + 1000000000LL;
  RunUntil("redis-idle", [&] { return NowNs() >= until; });
  double a = RedisCpuSeconds(o_.redis_unix);
  if (a >= 0) redis_idle_per_s_ = (a - b) / ((NowNs() - t0) / 1e9);
}

void Bench::AddCpu(Json& j, const std::vector<ProcSample>& before,
                   const std::vector<ProcSample>& after, size_t events,
                   double seconds) const {
  Json cpu = Json::object();
  for (size_t i = 0; i < o_.pids.size(); ++i) {
    double s = after[i].cpu_s - before[i].cpu_s;
    Json p;
    p["cpu_s"] = Round(s, 2);
    p["cpu_ms_per_event"] = Round(s * 1e3 / static_cast<double>(events), 4);
    p["rss_mb"] = Round(after[i].rss_bytes / 1048576.0, 1);
    cpu[o_.pids[i].first] = p;
  }
  const ProcSample& b = before.back();
  const ProcSample& a = after.back();
  if (b.ok && a.ok) {
    Json p;
    p["cpu_s"] = Round(a.cpu_s - b.cpu_s, 4);
    p["cpu_us_per_event"] =
        Round((a.cpu_s - b.cpu_s) * 1e6 / static_cast<double>(events), 1);
    if (redis_idle_per_s_ >= 0) {
      double net = a.cpu_s - b.cpu_s - redis_idle_per_s_ * seconds;
      p["idle_cpu_ms_per_s"] = Round(redis_idle_per_s_ * 1e3, 2);
      p["net_cpu_us_per_event"] =
          Round(net * 1e6 / static_cast<double>(events), 1);
    }
    cpu["redis_info"] = p;
  }
  j["cpu"] = cpu;
}

int Bench::Fail(const std::string& why) {
  Json j;
  j["name"] = o_.name;
  j["mode"] = o_.mode;
  j["error"] = why;
  j["phase"] = phase_;
  j["subscribers_ready"] = ready_;
  j["subscribers_ended"] = ended_;
  j["acks_ok"] = acks_ok_;
  j["acks_failed"] = acks_failed_;
  if (!first_error_.empty()) j["first_publish_error"] = first_error_;
  j["deliveries"] = fresh_;
  std::printf("%s\n", j.dump().c_str());
  return 3;
}

int Bench::Run() {
  RaiseFdLimit();
  if (!ResolveIpv4(o_.host, o_.pub_port, &pub_addr_) ||
      !ResolveIpv4(o_.host, o_.sub_port, &sub_addr_))
    return Fail("bad --host or port");
  const int64_t start = NowNs();
  deadline_ = start + static_cast<int64_t>(o_.timeout_s * 1e9);
  pub_ = std::make_unique<Publisher>(&loop_, this);
  std::string err;
  if (!pub_->Connect(pub_addr_, nullptr, &err)) return Fail(err);
  // Sequence numbers: 0 is the warm-up (fanout) or the cursor (replay);
  // the measured events are 1..M.
  const size_t capacity = o_.events + 1;
  sent_.assign(capacity, 0);
  ready_flags_.assign(o_.subscribers, 0);
  for (size_t i = 0; i < o_.subscribers; ++i)
    subs_.push_back(std::make_unique<Subscriber>(&loop_, this, i, 0, capacity));
  Json j;
  j["name"] = o_.name;
  j["mode"] = o_.mode;
  j["subscribers"] = o_.subscribers;
  j["events"] = o_.events;
  j["size"] = o_.size;

  if (o_.mode == "fanout") {
    first_recv_.assign(capacity, 0);
    last_recv_.assign(capacity, 0);
    latency_us_.reserve(o_.subscribers * o_.events);
    request_ = SubscribeRequest("");
    int64_t t0 = NowNs();
    if (!RunUntil("connect", [&] {
          return next_connect_ == subs_.size() && handshakes_ == 0;
        }))
      return Fail("timeout");
    if (ready_ < o_.subscribers) return Fail("some subscribers failed");
    j["connect_s"] = Round((NowNs() - t0) / 1e9);
    // Warm-up: a fresh subscriber on a Redis node is live once the node
    // synced the topic; publish event 0 until every subscriber has it.
    bool warm = false;
    for (int attempt = 0; attempt < 100 && !warm; ++attempt) {
      uint64_t acked = acks_ok_ + acks_failed_;
      publishing_ = false;
      Publish(0);
      if (!RunUntil("warm-up", [&] { return acks_ok_ + acks_failed_ > acked; }))
        return Fail("timeout");
      int64_t until = NowNs() + 200 * 1000000LL;
      RunUntil("warm-up", [&] {
        if (NowNs() > until) return true;
        for (auto& s : subs_)
          if (!s->got(0)) return false;
        return true;
      });
      warm = std::all_of(subs_.begin(), subs_.end(),
                         [](const auto& s) { return s->got(0); });
    }
    if (!warm) return Fail("subscribers never went live");
    uint64_t dups_before = dups_;
    for (auto& s : subs_) dups_before += s->duplicates();
    acks_ok_ = acks_failed_ = 0;
    first_send_ = 0;
    MeasureRedisIdle();
    std::vector<ProcSample> before = SamplePids();
    next_seq_ = 1;
    end_seq_ = o_.events + 1;
    publishing_ = true;
    pub_start_ = last_activity_ = NowNs();
    const uint64_t expected = o_.subscribers * o_.events;
    bool ok = RunUntil("publish", [&] {
      if (acks_ok_ + acks_failed_ < o_.events) return false;
      return fresh_ >= expected ||
             NowNs() - last_activity_ > static_cast<int64_t>(o_.settle_s * 1e9);
    });
    if (!ok) return Fail(error_.empty() ? "timeout" : error_);
    std::vector<ProcSample> after = SamplePids();
    const double phase_s = (NowNs() - pub_start_) / 1e9;
    uint64_t dups = dups_;
    for (auto& s : subs_) dups += s->duplicates();
    j["rate"] = o_.rate;
    j["acks_ok"] = acks_ok_;
    j["publish_errors"] = acks_failed_;
    if (!first_error_.empty()) j["first_publish_error"] = first_error_;
    j["deliveries_expected"] = expected;
    j["deliveries"] = fresh_;
    j["lost"] = expected - std::min<uint64_t>(expected, fresh_);
    j["duplicated"] = dups - dups_before;
    uint64_t reordered = 0, misrouted = 0, closed = 0;
    for (auto& s : subs_) {
      reordered += s->reordered();
      misrouted += s->misrouted();
      closed += s->state() == Subscriber::State::kEnded;
    }
    j["reordered"] = reordered;
    j["misrouted"] = misrouted;
    j["closed_by_server"] = closed;
    double window = (last_delivery_ - first_send_) / 1e9;
    j["window_s"] = Round(window);
    j["deliveries_per_s"] = window > 0 ? Round(fresh_ / window, 0) : 0.0;
    std::vector<uint32_t> lat = std::move(latency_us_);
    std::sort(lat.begin(), lat.end());
    j["latency_ms_p50"] = Round(Percentile(lat, 0.5) / 1e3);
    j["latency_ms_p99"] = Round(Percentile(lat, 0.99) / 1e3);
    j["latency_ms_max"] = Round(Percentile(lat, 1.0) / 1e3);
    std::vector<uint32_t> first, last;
    for (size_t q = 1; q < capacity; ++q) {
      if (first_recv_[q] == 0) continue;
      first.push_back(
          static_cast<uint32_t>((first_recv_[q] - sent_[q]) / 1000));
      last.push_back(static_cast<uint32_t>((last_recv_[q] - sent_[q]) / 1000));
    }
    std::sort(first.begin(), first.end());
    std::sort(last.begin(), last.end());
    j["first_subscriber_ms_p50"] = Round(Percentile(first, 0.5) / 1e3);
    j["first_subscriber_ms_p99"] = Round(Percentile(first, 0.99) / 1e3);
    j["last_subscriber_ms_p50"] = Round(Percentile(last, 0.5) / 1e3);
    j["last_subscriber_ms_p99"] = Round(Percentile(last, 0.99) / 1e3);
    AddCpu(j, before, after, o_.events, phase_s);
  } else {
    // Replay: publish 0..M with nobody subscribed, then resume from 0.
    MeasureRedisIdle();
    std::vector<ProcSample> before_pub = SamplePids();
    next_seq_ = 0;
    end_seq_ = o_.events + 1;
    publishing_ = true;
    pub_start_ = NowNs();
    if (!RunUntil("publish",
                  [&] { return acks_ok_ + acks_failed_ >= o_.events + 1; }))
      return Fail(error_.empty() ? "timeout" : error_);
    publishing_ = false;
    double pub_s = (NowNs() - pub_start_) / 1e9;
    std::vector<ProcSample> after_pub = SamplePids();
    if (acks_failed_ > 0 || id0_.empty()) return Fail("publish failed");
    j["publish_s"] = Round(pub_s);
    j["publish_per_s"] = Round((o_.events + 1) / pub_s, 0);
    Json pub_cpu;
    AddCpu(pub_cpu, before_pub, after_pub, o_.events + 1, pub_s);
    j["publish_cpu"] = pub_cpu["cpu"];

    done_ns_.assign(o_.subscribers, 0);
    std::vector<ProcSample> before = SamplePids();
    request_ = SubscribeRequest(id0_);
    const int64_t t0 = last_activity_ = NowNs();
    bool ok = RunUntil("replay", [&] {
      if (next_connect_ < subs_.size() || handshakes_ > 0) return false;
      size_t finished = 0;
      for (size_t i = 0; i < subs_.size(); ++i)
        finished += done_ns_[i] != 0 || subs_[i]->gap() ||
                    subs_[i]->state() == Subscriber::State::kEnded;
      return finished == subs_.size() ||
             NowNs() - last_activity_ > static_cast<int64_t>(o_.settle_s * 1e9);
    });
    if (!ok) return Fail("timeout");
    std::vector<ProcSample> after = SamplePids();
    const double phase_s = (NowNs() - t0) / 1e9;
    std::vector<uint32_t> catchup;
    int64_t all_done = 0;
    size_t complete = 0;
    for (size_t i = 0; i < subs_.size(); ++i) {
      if (done_ns_[i] == 0) continue;
      ++complete;
      all_done = std::max(all_done, done_ns_[i]);
      catchup.push_back(
          static_cast<uint32_t>((done_ns_[i] - subs_[i]->connect_ns()) / 1000));
    }
    std::sort(catchup.begin(), catchup.end());
    uint64_t expected = o_.subscribers * o_.events;
    uint64_t dups = dups_;
    for (auto& s : subs_) dups += s->duplicates();
    j["subscribers_complete"] = complete;
    j["gaps"] = gaps_;
    j["deliveries_expected"] = expected;
    j["deliveries"] = fresh_;
    j["lost"] = expected - std::min<uint64_t>(expected, fresh_);
    j["duplicated"] = dups;
    j["all_done_s"] =
        complete == subs_.size() ? Round((all_done - t0) / 1e9) : -1.0;
    j["catchup_ms_p50"] = Round(Percentile(catchup, 0.5) / 1e3);
    j["catchup_ms_p99"] = Round(Percentile(catchup, 0.99) / 1e3);
    j["replayed_events_per_s"] =
        all_done > t0 ? Round(fresh_ / ((all_done - t0) / 1e9), 0) : 0.0;
    AddCpu(j, before, after, o_.events, phase_s);
  }
  j["pub_node"] = HttpGet(pub_addr_, "/stats");
  if (o_.sub_port != o_.pub_port) j["sub_node"] = HttpGet(sub_addr_, "/stats");
  j["wall_s"] = Round((NowNs() - start) / 1e9);
  for (auto& s : subs_) s->Close();
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace evsse::bench

int main(int argc, char** argv) {
  evsse::bench::Options o;
  if (!evsse::bench::ParseArgs(argc, argv, &o)) {
    std::fputs(evsse::bench::kUsage, stderr);
    return 2;
  }
  return evsse::bench::Bench(std::move(o)).Run();
}
