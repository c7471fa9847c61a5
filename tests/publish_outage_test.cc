// The publisher under a Redis outage (issue 7): a node (Hub + evhttp server
// on the test loop, attached to a private redis-server) keeps publishing,
// through Hub::Publish and through POST /publish, while Redis first hangs
// (SIGSTOP) and then stops. Every publish must get exactly one outcome:
//  - an id (HTTP 200): the event is in the stream and every subscriber gets
//    it once;
//  - kUnavailable (HTTP 503): not published (fail fast, nothing queued); no
//    subscriber ever gets it;
//  - kUnknown (HTTP 504): it was sent to Redis and the answer was lost; it
//    is delivered exactly once if Redis stored it, never otherwise.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "evsse/hub.h"
#include "evsse/redis.h"
#include "http_fixture.h"
#include "node_process.h"
#include "redis_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Pub: one publish, through the Hub API or HTTP.
struct Pub {
  bool http = false;
  std::string data;
  int calls = 0;  // Hub: callback invocations
  std::optional<Result<std::string>> result;
  std::unique_ptr<TestClient> post;  // HTTP: the POST connection
  bool done() const { return http ? post->closed() : calls > 0; }
};

class PublishOutageTest : public HttpFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Start());
    ASSERT_TRUE(SaveOnShutdown());
    HttpFixture::SetUp();
  }
  void TearDown() override {
    FreeServer();
    link_.reset();  // the link before the Hub
    hub_.reset();
    HttpFixture::TearDown();
  }

  // SaveOnShutdown: redis-server runs with --save ''; a save point makes
  // its SIGTERM shutdown write dump.rdb, which the restart loads.
  ::testing::AssertionResult SaveOnShutdown() {
    ReplyPtr r = redis_.Command({"CONFIG", "SET", "save", "3600 1"});
    if (r && r->type == REDIS_REPLY_STATUS)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "CONFIG SET save failed";
  }

  // Pump keeps up to 4 Hub publishes and 2 POSTs in flight, starting one
  // batch per millisecond at most (failures come back at once).
  void Pump() {
    if (!publishing_ || Clock::now() < next_batch_) return;
    next_batch_ = Clock::now() + milliseconds(1);
    int hub_in_flight = 0, http_in_flight = 0;
    for (size_t i = first_open_; i < pubs_.size(); ++i) {
      if (pubs_[i]->done()) continue;
      (pubs_[i]->http ? http_in_flight : hub_in_flight)++;
    }
    while (hub_in_flight < 4) {
      auto p = std::make_unique<Pub>();
      p->data = "h" + std::to_string(pubs_.size());
      Pub* raw = p.get();
      Status s =
          hub_->Publish("o", {"n", p->data}, [raw](Result<std::string> r) {
            ++raw->calls;
            raw->result = std::move(r);
          });
      ASSERT_TRUE(s.ok()) << s.ToString();
      pubs_.push_back(std::move(p));
      ++hub_in_flight;
    }
    while (http_in_flight < 2) {
      auto p = std::make_unique<Pub>();
      p->http = true;
      p->data = "p" + std::to_string(pubs_.size());
      p->post = std::make_unique<TestClient>(
          port_, PostRequest("/publish?topic=o&event=n", p->data));
      pubs_.push_back(std::move(p));
      ++http_in_flight;
    }
    while (first_open_ < pubs_.size() && pubs_[first_open_]->done())
      ++first_open_;
  }

  bool Publishing(const std::function<bool()>& until, milliseconds timeout) {
    return RunUntil(
        [&] {
          Pump();
          return until();
        },
        timeout);
  }

  // Counts of outcomes so far: ok, unavailable (503), unknown (504).
  struct Counts {
    size_t ok = 0, unavailable = 0, unknown = 0, http_ok = 0;
  };
  Counts Tally() const {
    Counts c;
    for (const auto& p : pubs_) {
      if (!p->done()) continue;
      StatusCode code = p->http ? HttpCode(*p) : p->result->status().code();
      c.ok += code == StatusCode::kOk;
      c.http_ok += p->http && code == StatusCode::kOk;
      c.unavailable += code == StatusCode::kUnavailable;
      c.unknown += code == StatusCode::kUnknown;
    }
    return c;
  }
  static StatusCode HttpCode(const Pub& p) {
    switch (p.post->status()) {
      case 200:
        return StatusCode::kOk;
      case 503:
        return StatusCode::kUnavailable;
      case 504:
        return StatusCode::kUnknown;
      default:
        return StatusCode::kInternal;
    }
  }

  RedisServer redis_;
  std::unique_ptr<redis::Link> link_;
  std::vector<std::unique_ptr<Pub>> pubs_;
  size_t first_open_ = 0;
  bool publishing_ = true;
  Clock::time_point next_batch_;
};

TEST_F(PublishOutageTest, EveryPublishGetsOneOutcomeAndNoAcceptedEventIsLost) {
  HubOptions ho;
  ho.history_max_events = 100000;  // the stream's MAXLEN: nothing trimmed
  StartServer(ho);
  redis::RedisOptions ro;
  ro.address = redis_.address();
  ro.connect_timeout = milliseconds(500);
  ro.command_timeout = milliseconds(500);
  ro.reconnect_min = milliseconds(20);
  ro.reconnect_max = milliseconds(200);
  auto link = redis::Attach(hub_.get(), ro);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  link_ = std::move(link).value();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().backend.up; }));
  std::vector<std::unique_ptr<TestClient>> subs;
  subs.push_back(Get("/events?topic=o"));
  subs.push_back(Get("/events?topic=o"));
  // Live: both got a probe published after they connected.
  bool live = false;
  for (int i = 0; i < 50 && !live; ++i) {
    std::string probe = "probe-" + std::to_string(i);
    Publish("o", probe, "probe");
    live = RunUntil(
        [&] {
          for (auto& s : subs)
            if (s->events.empty() || s->events.back().data != probe)
              return false;
          return true;
        },
        milliseconds(200));
  }
  ASSERT_TRUE(live);

  ASSERT_TRUE(
      Publishing([&] { return Tally().ok >= 100; }, milliseconds(10000)));
  // Redis hangs: the publishes on the wire time out (kUnknown, 504); the
  // link goes down and the next ones fail fast (kUnavailable, 503).
  redis_.Pause();
  auto paused_at = Clock::now();
  ASSERT_TRUE(
      Publishing([&] { return Clock::now() - paused_at > milliseconds(1500); },
                 milliseconds(5000)));
  Counts in_hang = Tally();
  EXPECT_GE(in_hang.unknown, 1u);
  EXPECT_GE(in_hang.unavailable, 10u);
  // Redis resumes (and runs the scripts it had read), the link comes back,
  // then Redis stops (SIGTERM, dump.rdb written) while publishing.
  redis_.Resume();
  size_t ok_before = Tally().ok;
  ASSERT_TRUE(Publishing([&] { return Tally().ok >= ok_before + 50; },
                         milliseconds(10000)));
  redis_.Stop();
  auto stopped_at = Clock::now();
  size_t unavailable_before = Tally().unavailable;
  ASSERT_TRUE(
      Publishing([&] { return Clock::now() - stopped_at > milliseconds(600); },
                 milliseconds(5000)));
  EXPECT_GE(Tally().unavailable, unavailable_before + 10);
  EXPECT_FALSE(hub_->stats().backend.up);
  ASSERT_TRUE(redis_.Start());
  ok_before = Tally().ok;
  ASSERT_TRUE(Publishing(
      [&] { return hub_->stats().backend.up && Tally().ok >= ok_before + 100; },
      milliseconds(15000)));
  publishing_ = false;
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& p : pubs_)
          if (!p->done()) return false;
        return true;
      },
      milliseconds(10000)));

  // Exactly one outcome each, and only the three kinds.
  std::map<std::string, const Pub*> by_data;
  for (const auto& p : pubs_) {
    by_data[p->data] = p.get();
    if (p->http) {
      EXPECT_NE(HttpCode(*p), StatusCode::kInternal)
          << p->data << ": " << p->post->status() << " " << p->post->body();
      if (p->post->status() == 200) {
        EXPECT_FALSE(IdOf(p->post->body()).empty()) << p->post->body();
      } else {
        EXPECT_GT(p->post->body().size(), 1u) << "no message: " << p->data;
      }
    } else {
      EXPECT_EQ(p->calls, 1) << p->data;
      StatusCode code = p->result->status().code();
      EXPECT_TRUE(code == StatusCode::kOk || code == StatusCode::kUnavailable ||
                  code == StatusCode::kUnknown)
          << p->data << ": " << p->result->status().ToString();
      if (!p->result->ok()) {
        EXPECT_FALSE(p->result->status().message().empty()) << p->data;
      }
    }
  }

  // The stream, read back: every accepted event with its id, no refused
  // one, each event once.
  std::vector<std::pair<std::string, std::string>> stored;  // data, id
  // (A restart from files continues the stream under a new epoch: each
  // entry's id has the epoch it was written in.)
  WrittenEpochs epochs(redis_, "o");
  ReplyPtr range = redis_.Command({"XRANGE", "evsse:{o}:s", "-", "+"});
  ASSERT_TRUE(range && range->type == REDIS_REPLY_ARRAY);
  for (size_t i = 0; i < range->elements; ++i) {
    const redisReply* e = range->element[i];
    std::string sid(e->element[0]->str, e->element[0]->len);
    std::string prefix = epochs.Of(sid) + ".";
    if (sid.size() > 2 && sid.compare(sid.size() - 2, 2, "-0") == 0)
      sid.resize(sid.size() - 2);  // the wire drops a zero sequence
    std::string type, data;
    const redisReply* f = e->element[1];
    for (size_t j = 0; j + 1 < f->elements; j += 2) {
      std::string k(f->element[j]->str, f->element[j]->len);
      std::string v(f->element[j + 1]->str, f->element[j + 1]->len);
      if (k == "t") type = v;
      if (k == "d") data = v;
    }
    if (type == "n") stored.emplace_back(data, prefix + sid);
  }
  std::set<std::string> stored_data;
  size_t unknown_stored = 0;
  for (const auto& [data, id] : stored) {
    EXPECT_TRUE(stored_data.insert(data).second) << data << " stored twice";
    auto it = by_data.find(data);
    ASSERT_NE(it, by_data.end()) << "stored but never published: " << data;
    const Pub& p = *it->second;
    StatusCode code = p.http ? HttpCode(p) : p.result->status().code();
    EXPECT_NE(code, StatusCode::kUnavailable)
        << data << " was refused but is stored";
    if (code == StatusCode::kOk) {
      EXPECT_EQ(p.http ? IdOf(p.post->body()) : **p.result, id) << data;
    }
    unknown_stored += code == StatusCode::kUnknown;
  }
  Counts total = Tally();
  EXPECT_EQ(stored.size(), total.ok + unknown_stored);

  // Subscribers: exactly the stream, in order, once.
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& s : subs) {
          size_t n = 0;
          for (auto& e : s->events) n += e.type == "n";
          if (n < stored.size()) return false;
        }
        return true;
      },
      milliseconds(10000)));
  RunFor(milliseconds(200));
  for (size_t k = 0; k < subs.size(); ++k) {
    std::vector<std::pair<std::string, std::string>> got;
    for (auto& e : subs[k]->events)
      if (e.type == "n") got.emplace_back(e.data, e.last_event_id);
    EXPECT_EQ(got, stored) << "subscriber " << k;
    EXPECT_FALSE(subs[k]->closed()) << k;
  }
  EXPECT_EQ(hub_->stats().gaps, 0u);
  std::printf(
      "[figures] publishes=%zu ok=%zu (http %zu) unavailable=%zu "
      "unknown=%zu (stored %zu) stored=%zu\n",
      pubs_.size(), total.ok, total.http_ok, total.unavailable, total.unknown,
      unknown_stored, stored.size());
}

}  // namespace
}  // namespace evsse::testing
