// Hub::Publish from other threads, and Hubs on several loops sharing one
// pubsub::Bus. Labelled `threads`: run under TSan
// (EVSSE_SANITIZE=thread, `ctest -L threads`).
#include <event2/event.h>
#include <event2/http.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/pubsub/bus.h"
#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using ::testing::IsEmpty;

constexpr char kSubscribe[] =
    "GET /events?topic=a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Accept: text/event-stream\r\n\r\n";

std::string Base36(uint64_t v) {
  std::string s;
  pubsub::AppendBase36(s, v);
  return s;
}

// SplitId parses a single-topic id "epoch.seq"; false when it is not one.
bool SplitId(const std::string& id, std::string* epoch, uint64_t* seq) {
  size_t dot = id.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == id.size())
    return false;
  *epoch = id.substr(0, dot);
  for (size_t i = dot + 1; i < id.size(); ++i)
    if (id[i] < '0' || id[i] > '9') return false;
  *seq = std::stoull(id.substr(dot + 1));
  return true;
}

// ExpectConsecutiveIds checks that `ids` all carry `epoch` and that their
// sequence numbers go up by exactly one from `first`.
void ExpectConsecutiveIds(const std::vector<std::string>& ids,
                          const std::string& epoch, uint64_t first) {
  uint64_t want = first;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string e;
    uint64_t seq = 0;
    ASSERT_TRUE(SplitId(ids[i], &e, &seq)) << "event " << i << ": " << ids[i];
    ASSERT_EQ(e, epoch) << "event " << i;
    ASSERT_EQ(seq, want) << "event " << i << " (id " << ids[i] << ")";
    ++want;
  }
}

// ExpectPerThreadOrder checks data "t<thread>-<n>": every thread's n goes
// 0, 1, 2, ... and each thread contributed `each` events.
void ExpectPerThreadOrder(const std::vector<std::string>& datas, int threads,
                          int each) {
  std::vector<int> next(threads, 0);
  for (const std::string& d : datas) {
    int t = -1, n = -1;
    ASSERT_EQ(std::sscanf(d.c_str(), "t%d-%d", &t, &n), 2) << d;
    ASSERT_GE(t, 0);
    ASSERT_LT(t, threads);
    ASSERT_EQ(n, next[t]) << "thread " << t << " out of order at " << d;
    next[t] = n + 1;
  }
  EXPECT_EQ(next, std::vector<int>(threads, each));
}

std::string Data(int thread, int n) {
  return "t" + std::to_string(thread) + "-" + std::to_string(n);
}

// ---------------------------------------------------------------------------
// Publish from four threads into a Hub whose loop runs on the test thread.

class HubThreadsTest : public HttpFixture {};

TEST_F(HubThreadsTest, ConcurrentPublishersReachEverySubscriberOnce) {
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  constexpr int kTotal = kThreads * kEach;
  StartServer();
  auto c1 = Get("/events?topic=a");
  auto c2 = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c1->retry && c2->retry; }));
  ASSERT_EQ(c1->status(), 200);
  ASSERT_EQ(c2->status(), 200);

  // Done callbacks run on the loop thread (this thread); the counter is
  // atomic only so that publishers may read it.
  std::atomic<int> done_calls{0};
  std::atomic<int> rejected{0};
  std::map<std::string, std::vector<std::string>> done_ids;  // data -> ids
  std::vector<std::string> done_errors;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::atomic<int> off_loop_calls{0};
  std::atomic<int> early_calls{0};

  std::vector<std::thread> publishers;
  for (int t = 0; t < kThreads; ++t) {
    publishers.emplace_back([&, t] {
      for (int n = 0; n < kEach; ++n) {
        std::string data = Data(t, n);
        Status s =
            hub_->Publish("a", {"", data}, [&, data](Result<std::string> id) {
              if (std::this_thread::get_id() != loop_thread) ++off_loop_calls;
              ++done_calls;
              // Fired only once the event is in the topic's history (its
              // id assigned); subscribers get it in the same fan-out or
              // within the coalescing window.
              if (hub_->stats().events_published <
                  static_cast<uint64_t>(done_calls.load()))
                ++early_calls;
              if (id.ok())
                done_ids[data].push_back(*id);
              else
                done_errors.push_back(id.status().ToString());
            });
        if (!s.ok()) ++rejected;
      }
    });
  }
  bool all = RunUntil(
      [&] {
        return c1->events.size() >= kTotal && c2->events.size() >= kTotal &&
               done_calls.load() >= kTotal;
      },
      std::chrono::seconds(60));
  for (auto& p : publishers) p.join();
  // Anything extra (a duplicate) would arrive right behind.
  RunFor(std::chrono::milliseconds(50));
  ASSERT_TRUE(all) << "c1 " << c1->events.size() << ", c2 " << c2->events.size()
                   << ", done " << done_calls.load();

  EXPECT_EQ(rejected.load(), 0);
  EXPECT_EQ(off_loop_calls.load(), 0);
  EXPECT_EQ(early_calls.load(), 0);
  EXPECT_THAT(done_errors, IsEmpty());
  EXPECT_EQ(done_calls.load(), kTotal);
  ASSERT_EQ(done_ids.size(), static_cast<size_t>(kTotal));

  const std::string epoch = Base36(hub_->epoch());
  for (TestClient* c : {c1.get(), c2.get()}) {
    SCOPED_TRACE(c == c1.get() ? "client 1" : "client 2");
    ASSERT_EQ(c->events.size(), static_cast<size_t>(kTotal));
    std::vector<std::string> datas = c->datas();
    std::set<std::string> unique(datas.begin(), datas.end());
    EXPECT_EQ(unique.size(), static_cast<size_t>(kTotal));  // each once
    ExpectPerThreadOrder(datas, kThreads, kEach);
    ExpectConsecutiveIds(c->ids(), epoch, 1);
    for (const auto& e : c->events) {
      auto it = done_ids.find(e.data);
      ASSERT_NE(it, done_ids.end()) << e.data;
      ASSERT_EQ(it->second.size(), 1u) << "done fired more than once";
      EXPECT_EQ(it->second[0], e.last_event_id) << e.data;
    }
  }
  // Both saw one order.
  EXPECT_EQ(c1->ids(), c2->ids());
  EXPECT_EQ(c1->datas(), c2->datas());

  HubStats st = hub_->stats();
  EXPECT_EQ(st.events_published, static_cast<uint64_t>(kTotal));
  EXPECT_EQ(st.events_delivered, static_cast<uint64_t>(2 * kTotal));
  EXPECT_EQ(st.publish_errors, 0u);
  EXPECT_EQ(st.slow_consumer_closes, 0u);
  EXPECT_EQ(st.connections_active, 2u);
}

// ---------------------------------------------------------------------------
// Two Hubs on two event_bases, each run by its own thread, sharing a Bus.

// LoopThread owns a base, an evhttp server on 127.0.0.1:0 with /events and a
// Hub on `bus`, all created, run and destroyed on its own thread.
class LoopThread {
 public:
  explicit LoopThread(std::shared_ptr<pubsub::Bus> bus) {
    thread_ = std::thread([this, bus] { Run(bus); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return ready_; });
  }
  ~LoopThread() { Stop(); }

  // Stop ends the loop and joins; the Hub and server are gone afterwards.
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
  }

  int port() const { return port_; }
  // hub is valid between construction and Stop; only Publish may be
  // called on it from another thread.
  Hub* hub() const { return hub_.get(); }
  const std::string& error() const { return error_; }
  // stats as of the end of the loop (valid after Stop).
  const HubStats& final_stats() const { return final_stats_; }

 private:
  void Run(std::shared_ptr<pubsub::Bus> bus) {
    base_ = event_base_new();
    http_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
    if (!bound) {
      error_ = "bind failed";
    } else {
      sockaddr_in a{};
      socklen_t len = sizeof a;
      getsockname(evhttp_bound_socket_get_fd(bound),
                  reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
      HubOptions ho;
      ho.bus = bus;
      auto hub = Hub::Create(base_, ho);
      if (!hub.ok()) {
        error_ = hub.status().ToString();
      } else {
        hub_ = std::move(hub.value());
        Status s = evhttp::Mount(http_, "/events", hub_.get()).Release();
        if (!s.ok()) error_ = s.ToString();
      }
    }
    // A short persistent tick lets Stop() end the loop without libevent's
    // thread support.
    event* tick = event_new(base_, -1, EV_PERSIST, &LoopThread::OnTick, this);
    timeval tv{0, 2000};
    event_add(tick, &tv);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_ = true;
    }
    cv_.notify_all();
    if (error_.empty()) event_base_dispatch(base_);
    if (hub_) final_stats_ = hub_->stats();
    event_free(tick);
    evhttp_free(http_);
    hub_.reset();
    event_base_loop(base_, EVLOOP_NONBLOCK);
    event_base_free(base_);
  }

  static void OnTick(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<LoopThread*>(arg);
    if (self->stop_.load()) event_base_loopbreak(self->base_);
  }

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  std::atomic<bool> stop_{false};
  event_base* base_ = nullptr;
  struct ::evhttp* http_ = nullptr;
  std::unique_ptr<Hub> hub_;
  int port_ = 0;
  std::string error_;
  HubStats final_stats_;
};

// PollUntil polls `clients` on this thread until pred() or the timeout.
bool PollUntil(const std::vector<TestClient*>& clients,
               const std::function<bool()>& pred,
               std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (TestClient* c : clients) c->Poll();
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

TEST(SharedBusTest, HubsOnTwoLoopThreadsSeeOneOrder) {
  std::signal(SIGPIPE, SIG_IGN);
  constexpr int kEvents = 1000;
  auto bus = std::make_shared<pubsub::Bus>();
  LoopThread a(bus);
  LoopThread b(bus);
  ASSERT_EQ(a.error(), "");
  ASSERT_EQ(b.error(), "");
  EXPECT_EQ(a.hub()->epoch(), bus->epoch());  // epoch is a const of the bus
  EXPECT_EQ(b.hub()->epoch(), bus->epoch());

  TestClient ca(a.port(), kSubscribe);
  TestClient cb(b.port(), kSubscribe);
  ASSERT_TRUE(PollUntil(
      {&ca, &cb}, [&] { return ca.retry && cb.retry; },
      std::chrono::seconds(10)));
  ASSERT_EQ(ca.status(), 200);
  ASSERT_EQ(cb.status(), 200);

  // Done callbacks run on loop thread A; the test thread reads under mu.
  std::mutex mu;
  std::vector<std::string> done_ids;
  std::vector<std::string> done_errors;
  std::atomic<int> rejected{0};
  std::thread publisher([&] {
    for (int n = 0; n < kEvents; ++n) {
      Status s = a.hub()->Publish(
          "a", {"", "n" + std::to_string(n)}, [&](Result<std::string> id) {
            std::lock_guard<std::mutex> lock(mu);
            if (id.ok())
              done_ids.push_back(*id);
            else
              done_errors.push_back(id.status().ToString());
          });
      if (!s.ok()) ++rejected;
    }
  });
  auto done_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return done_ids.size() + done_errors.size();
  };
  bool all = PollUntil(
      {&ca, &cb},
      [&] {
        return ca.events.size() >= kEvents && cb.events.size() >= kEvents &&
               done_count() >= kEvents;
      },
      std::chrono::seconds(60));
  publisher.join();
  PollUntil(
      {&ca, &cb}, [] { return false; }, std::chrono::milliseconds(50));
  a.Stop();
  b.Stop();
  ASSERT_TRUE(all) << "a " << ca.events.size() << ", b " << cb.events.size()
                   << ", done " << done_count();

  EXPECT_EQ(rejected.load(), 0);
  EXPECT_THAT(done_errors, IsEmpty());
  ASSERT_EQ(ca.events.size(), static_cast<size_t>(kEvents));
  ASSERT_EQ(cb.events.size(), static_cast<size_t>(kEvents));
  EXPECT_EQ(ca.ids(), cb.ids());
  std::vector<std::string> want;
  for (int n = 0; n < kEvents; ++n) want.push_back("n" + std::to_string(n));
  EXPECT_EQ(ca.datas(), want);
  EXPECT_EQ(cb.datas(), want);
  ExpectConsecutiveIds(ca.ids(), Base36(bus->epoch()), 1);
  EXPECT_EQ(done_ids, ca.ids());  // the publisher learnt the ids on the wire

  EXPECT_EQ(a.final_stats().events_published, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(b.final_stats().events_published, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(a.final_stats().publish_errors, 0u);
  EXPECT_EQ(b.final_stats().publish_errors, 0u);
}

// ---------------------------------------------------------------------------
// Two Hubs on two bases driven alternately by the test thread, sharing a
// Bus, with one publisher thread per Hub.

class SharedBusFixtureTest : public HttpFixture {
 protected:
  void TearDown() override {
    if (http2_) evhttp_free(http2_);
    hub2_.reset();
    if (base2_) {
      event_base_loop(base2_, EVLOOP_NONBLOCK);
      event_base_free(base2_);
    }
    HttpFixture::TearDown();
  }

  // StartSecondServer makes the second loop: base2_, an evhttp server on
  // port2_ with /events, and hub2_ with `options`.
  void StartSecondServer(HubOptions options) {
    base2_ = event_base_new();
    http2_ = evhttp_new(base2_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http2_, "127.0.0.1", 0);
    ASSERT_NE(bound, nullptr);
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&addr), &len);
    port2_ = ntohs(addr.sin_port);
    auto hub2 = Hub::Create(base2_, std::move(options));
    ASSERT_TRUE(hub2.ok());
    hub2_ = std::move(hub2.value());
    ASSERT_TRUE(evhttp::Mount(http2_, "/events", hub2_.get()).Release().ok());
  }

  // Both runs the loops of both servers (RunUntil runs base_; each
  // predicate call runs base2_ once too).
  bool Both(const std::function<bool()>& pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return RunUntil(
        [&] {
          event_base_loop(base2_, EVLOOP_NONBLOCK);
          return pred();
        },
        timeout);
  }

  event_base* base2_ = nullptr;
  struct ::evhttp* http2_ = nullptr;
  std::unique_ptr<Hub> hub2_;
  int port2_ = 0;
};

TEST_F(SharedBusFixtureTest, PublishersOnBothHubsGiveIdenticalSequences) {
  constexpr int kEach = 500;
  auto bus = std::make_shared<pubsub::Bus>(0x5eed);
  HubOptions ho;
  ho.bus = bus;
  StartServer(ho);
  StartSecondServer(ho);
  EXPECT_EQ(hub_->epoch(), 0x5eedu);
  EXPECT_EQ(hub2_->epoch(), 0x5eedu);
  auto both = [this](const std::function<bool()>& pred,
                     std::chrono::milliseconds timeout) {
    return Both(pred, timeout);
  };

  auto c1 = Get("/events?topic=a");
  auto c2 = std::make_unique<TestClient>(port2_, kSubscribe);
  ASSERT_TRUE(
      both([&] { return c1->retry && c2->retry; }, std::chrono::seconds(5)));

  // Both publishers' callbacks run on this thread (each on its Hub's loop).
  std::atomic<int> done_calls{0};
  std::map<std::string, std::string> done_ids;  // data -> id
  int duplicates = 0;
  std::atomic<int> rejected{0};
  std::vector<std::thread> publishers;
  Hub* hubs[2] = {hub_.get(), hub2_.get()};
  for (int t = 0; t < 2; ++t) {
    publishers.emplace_back([&, t] {
      for (int n = 0; n < kEach; ++n) {
        std::string data = Data(t, n);
        Status s = hubs[t]->Publish("a", {"", data},
                                    [&, data](Result<std::string> id) {
                                      ++done_calls;
                                      if (!id.ok()) return;
                                      if (!done_ids.emplace(data, *id).second)
                                        ++duplicates;
                                    });
        if (!s.ok()) ++rejected;
      }
    });
  }
  bool all = both(
      [&] {
        return c1->events.size() >= 2 * kEach &&
               c2->events.size() >= 2 * kEach && done_calls >= 2 * kEach;
      },
      std::chrono::seconds(60));
  for (auto& p : publishers) p.join();
  both([] { return false; }, std::chrono::milliseconds(50));
  ASSERT_TRUE(all) << "c1 " << c1->events.size() << ", c2 " << c2->events.size()
                   << ", done " << done_calls.load();

  EXPECT_EQ(rejected.load(), 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(done_calls.load(), 2 * kEach);
  ASSERT_EQ(c1->events.size(), static_cast<size_t>(2 * kEach));
  EXPECT_EQ(c1->ids(), c2->ids());
  EXPECT_EQ(c1->datas(), c2->datas());
  ExpectConsecutiveIds(c1->ids(), Base36(0x5eed), 1);
  ExpectPerThreadOrder(c1->datas(), 2, kEach);
  for (const auto& e : c1->events) EXPECT_EQ(done_ids[e.data], e.last_event_id);
  EXPECT_EQ(hub_->stats().events_published, static_cast<uint64_t>(2 * kEach));
  EXPECT_EQ(hub2_->stats().events_published, static_cast<uint64_t>(2 * kEach));
}

// A Hub that joins a bus after events were published never saw them. A
// client that resumes on it (a reconnect landing on another loop of the same
// process) from a cursor before those events must get them or a gap event,
// never a silent skip.
TEST_F(SharedBusFixtureTest, HubJoiningLateDoesNotSilentlySkipOnResume) {
  auto bus = std::make_shared<pubsub::Bus>(77);
  HubOptions ho;
  ho.bus = bus;
  StartServer(ho);
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i)
    ids.push_back(Publish("a", "e" + std::to_string(i)));
  ASSERT_EQ(ids[2], Base36(77) + ".3");

  StartSecondServer(ho);  // joins now: e1..e5 are not in its history
  Publish("a", "e6");
  Publish("a", "e7");
  ASSERT_TRUE(Both([&] { return hub2_->stats().events_published == 2; }));

  // The client saw e1..e3 on hub A and reconnects to hub B.
  TestClient c(port2_,
               "GET /events?topic=a HTTP/1.1\r\nHost: x\r\n"
               "Accept: text/event-stream\r\nLast-Event-ID: " +
                   ids[2] + "\r\n\r\n");
  // Either it is told (a gap event first, then live from now) or it gets
  // everything after e3.
  ASSERT_TRUE(Both([&] {
    return !c.events.empty() &&
           (c.events[0].type == "gap" || c.events.back().data == "e7");
  })) << c.body();
  ASSERT_EQ(c.status(), 200);
  bool told = c.events[0].type == "gap";
  if (told) {
    // ... and goes on live.
    Publish("a", "e8");
    ASSERT_TRUE(Both([&] { return c.events.back().data == "e8"; })) << c.body();
  } else {
    EXPECT_EQ(c.datas(), (std::vector<std::string>{"e4", "e5", "e6", "e7"}))
        << "events e4, e5 were skipped without a gap event; stream:\n"
        << c.body();
  }
}

// Publish callbacks still queued when the Hub goes fire once, cancelled.
TEST_F(HubThreadsTest, QueuedCallbacksAreCancelledWhenTheHubGoes) {
  constexpr int kThreads = 3;
  constexpr int kEach = 100;
  StartServer();
  std::mutex mu;
  std::map<int, int> calls;  // publish number -> callback count
  int cancelled = 0;
  std::vector<std::thread> publishers;
  for (int t = 0; t < kThreads; ++t) {
    publishers.emplace_back([&, t] {
      for (int n = 0; n < kEach; ++n) {
        int key = t * kEach + n;
        Status s =
            hub_->Publish("a", {"", "x"}, [&, key](Result<std::string> id) {
              std::lock_guard<std::mutex> lock(mu);
              ++calls[key];
              if (id.status().code() == StatusCode::kCancelled) ++cancelled;
            });
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& p : publishers) p.join();
  // The loop never ran: every event is still queued for it.
  evhttp_free(http_);
  http_ = nullptr;
  hub_.reset();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(calls.size(), static_cast<size_t>(kThreads * kEach));
  for (auto& [key, count] : calls) EXPECT_EQ(count, 1) << "publish " << key;
  EXPECT_EQ(cancelled, kThreads * kEach);
}

}  // namespace
}  // namespace evsse::testing
