// Several event loops in one process: one evhttp server and one Hub per
// thread, all on one pubsub::Bus. A publish from any thread reaches the
// subscribers of every loop once, in the same order, with the same ids, and
// a client can resume on another loop. Labelled `threads` (TSan).
#include <event2/event.h>
#include <event2/http.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/pubsub/bus.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

// Loop: a thread running its own base, evhttp server and Hub. Everything
// but Publish happens on that thread, as the Hub requires.
class Loop {
 public:
  explicit Loop(std::shared_ptr<pubsub::Bus> bus) {
    thread_ = std::thread([this, bus] { Run(bus); });
    while (!ready_.load()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~Loop() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  Hub* hub() const { return hub_; }

 private:
  static void Tick(evutil_socket_t, short, void*) {}

  void Run(std::shared_ptr<pubsub::Bus> bus) {
    event_base* base = event_base_new();
    struct ::evhttp* http = evhttp_new(base);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&a), &len);
    HubOptions ho;
    ho.bus = std::move(bus);
    ho.history_max_events = 10000;
    std::unique_ptr<Hub> hub = Hub::Create(base, ho).value();
    EXPECT_TRUE(evhttp::Mount(http, "/events", hub.get()).Release().ok());
    // A ticking timer makes the loop notice stop_ (no cross-thread
    // loopexit needed).
    event* tick = event_new(base, -1, EV_PERSIST, &Loop::Tick, nullptr);
    timeval tv{0, 5000};
    event_add(tick, &tv);
    hub_ = hub.get();
    port_ = ntohs(a.sin_port);
    ready_ = true;
    while (!stop_) event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    evhttp_free(http);
    hub.reset();
    event_base_loop(base, EVLOOP_NONBLOCK);
    event_base_free(base);
  }

  std::thread thread_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stop_{false};
  std::atomic<Hub*> hub_{nullptr};
  std::atomic<int> port_{0};
};

// PollUntil reads every live TestClient on this (the test) thread.
bool PollUntil(const std::function<bool()>& pred,
               milliseconds timeout = milliseconds(20000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return pred();
}

std::unique_ptr<TestClient> Subscribe(int port, const std::string& extra = "") {
  return std::make_unique<TestClient>(
      port,
      "GET /events?topic=a&topic=b HTTP/1.1\r\nHost: x\r\n"
      "Accept: text/event-stream\r\n" +
          extra + "\r\n");
}

TEST(MultiLoopTest, FourLoopsConcurrentPublishersSameOrderAndIds) {
  std::signal(SIGPIPE, SIG_IGN);
  auto bus = std::make_shared<pubsub::Bus>();
  std::vector<std::unique_ptr<Loop>> loops;
  for (int i = 0; i < 4; ++i) loops.push_back(std::make_unique<Loop>(bus));
  std::vector<std::unique_ptr<TestClient>> clients;
  for (auto& l : loops)
    for (int k = 0; k < 2; ++k) clients.push_back(Subscribe(l->port()));
  auto poll_all = [&] {
    for (auto& c : clients) c->Poll();
  };
  ASSERT_TRUE(PollUntil([&] {
    poll_all();
    for (auto& c : clients)
      if (!c->retry) return false;
    return true;
  }));

  constexpr int kPublishers = 4, kPerPublisher = 400;
  std::atomic<int> done_callbacks{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      Hub* hub = loops[p % loops.size()]->hub();  // any Hub of the bus
      for (int n = 0; n < kPerPublisher; ++n) {
        std::string topic = n % 2 ? "a" : "b";
        Status s = hub->Publish(
            topic, {"", std::to_string(p) + ":" + std::to_string(n)},
            [&](Result<std::string> id) {
              EXPECT_TRUE(id.ok());
              ++done_callbacks;
            });
        EXPECT_TRUE(s.ok());
      }
    });
  }
  const size_t total = kPublishers * kPerPublisher;
  ASSERT_TRUE(PollUntil([&] {
    poll_all();
    for (auto& c : clients)
      if (c->events.size() < total) return false;
    return true;
  }));
  for (auto& t : publishers) t.join();
  ASSERT_TRUE(PollUntil([&] { return done_callbacks.load() == total; }));

  // Every client saw the same events with the same ids, in the same order;
  // each publisher's own order is kept.
  const auto& ref = clients[0]->events;
  for (auto& c : clients) {
    ASSERT_EQ(c->events.size(), total);
    for (size_t i = 0; i < total; ++i) {
      ASSERT_EQ(c->events[i].data, ref[i].data) << i;
      ASSERT_EQ(c->events[i].last_event_id, ref[i].last_event_id) << i;
    }
  }
  std::vector<int> next(kPublishers, 0);
  for (auto& e : ref) {
    int p = std::stoi(e.data.substr(0, e.data.find(':')));
    int n = std::stoi(e.data.substr(e.data.find(':') + 1));
    ASSERT_EQ(n, next[p]++);
  }

  // Resume on another loop from the first loop's cursor: exactly the rest.
  const std::string cursor = ref[total / 2 - 1].last_event_id;
  auto resumed =
      Subscribe(loops[3]->port(), "Last-Event-ID: " + cursor + "\r\n");
  ASSERT_TRUE(PollUntil([&] {
    resumed->Poll();
    return resumed->events.size() == total - total / 2;
  }));
  for (size_t i = 0; i < resumed->events.size(); ++i)
    ASSERT_EQ(resumed->events[i].last_event_id,
              ref[total / 2 + i].last_event_id);
  clients.clear();
  resumed.reset();
  loops.clear();
}

}  // namespace
}  // namespace evsse::testing
