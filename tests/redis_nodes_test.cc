// Several evsse nodes on one real Redis (a private redis-server per test,
// redis_fixture.h): two Hubs in this process on one loop, or two
// examples/evhttp_hello processes started with --redis. Publish on one node,
// receive and resume on the other, with exact ids; Redis and node restarts;
// trimmed history; a flood from two threads.
//
// Fresh subscribers start at their topic's tail once the node has synced
// the topic, so every test first makes its clients live with probe events
// (type "probe") and only then publishes the events it checks (type "n").
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/redis.h"
#include "http_fixture.h"
#include "node_process.h"
#include "redis_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Publisher = std::function<std::string(const std::string& data)>;

// ---- Small helpers ---------------------------------------------------------

std::string Str(const redisReply* r) {
  return r != nullptr && r->str != nullptr ? std::string(r->str, r->len) : "";
}

// WireId turns a stream id "ms-seq" into the id clients see:
// "<epoch>.<ms>-<seq>", or "<epoch>.<ms>" when seq is 0.
std::string WireId(const std::string& epoch, const std::string& stream_id) {
  size_t dash = stream_id.find('-');
  if (dash == std::string::npos) return epoch + "." + stream_id;
  return epoch + "." +
         (stream_id.substr(dash + 1) == "0" ? stream_id.substr(0, dash)
                                            : stream_id);
}

// IsRedisId: "<epoch>.<ms>[-<seq>]", epoch 1-13 base-36 digits (lower
// case), ms and seq 1-20 decimal digits.
bool IsRedisId(const std::string& id) {
  auto digits = [](const std::string& s, bool base36) {
    if (s.empty() || s.size() > (base36 ? 13u : 20u)) return false;
    for (char c : s)
      if (!((c >= '0' && c <= '9') || (base36 && c >= 'a' && c <= 'z')))
        return false;
    return true;
  };
  size_t dot = id.find('.');
  if (dot == std::string::npos || !digits(id.substr(0, dot), true))
    return false;
  std::string pos = id.substr(dot + 1);
  size_t dash = pos.find('-');
  if (dash == std::string::npos) return digits(pos, false);
  return digits(pos.substr(0, dash), false) &&
         digits(pos.substr(dash + 1), false);
}

// StoredEntry: one entry of a topic's stream, with its id as on the wire.
struct StoredEntry {
  std::string id;
  std::string type;
  std::string data;
};

// ReadStream reads a whole topic stream with a synchronous XRANGE, each
// id with the epoch its entry was written in (WrittenEpochs).
std::vector<StoredEntry> ReadStream(const RedisServer& redis,
                                    const std::string& topic) {
  std::vector<StoredEntry> out;
  WrittenEpochs epochs(redis, topic);
  ReplyPtr range =
      redis.Command({"XRANGE", "evsse:{" + topic + "}:s", "-", "+"});
  EXPECT_TRUE(range && range->type == REDIS_REPLY_ARRAY);
  if (!range || range->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i < range->elements; ++i) {
    const redisReply* e = range->element[i];
    StoredEntry s;
    s.id = WireId(epochs.Of(Str(e->element[0])), Str(e->element[0]));
    const redisReply* f = e->element[1];
    for (size_t j = 0; j + 1 < f->elements; j += 2) {
      if (Str(f->element[j]) == "t") s.type = Str(f->element[j + 1]);
      if (Str(f->element[j]) == "d") s.data = Str(f->element[j + 1]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> IdsOfType(const std::vector<StoredEntry>& entries,
                                   const std::string& type) {
  std::vector<std::string> ids;
  for (const StoredEntry& e : entries)
    if (e.type == type) ids.push_back(e.id);
  return ids;
}

// Numbered returns the events a client got that the test published (type
// "n"), and NumberedIds their ids.
std::vector<StreamParser::Event> Numbered(const TestClient& c) {
  std::vector<StreamParser::Event> out;
  for (const auto& e : c.events)
    if (e.type == "n") out.push_back(e);
  return out;
}

size_t NumberedCount(const TestClient& c) {
  size_t n = 0;
  for (const auto& e : c.events) n += e.type == "n";
  return n;
}

std::vector<std::string> NumberedIds(const TestClient& c) {
  std::vector<std::string> ids;
  for (const auto& e : Numbered(c)) ids.push_back(e.last_event_id);
  return ids;
}

std::unique_ptr<TestClient> Subscribe(int port, const std::string& target,
                                      const std::string& last_id = "") {
  std::string r = "GET " + target +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Accept: text/event-stream\r\n";
  if (!last_id.empty()) r += "Last-Event-ID: " + last_id + "\r\n";
  return std::make_unique<TestClient>(port, r + "\r\n");
}

// ---- The fixture -----------------------------------------------------------

// Node A is HttpFixture's server and Hub (port_, hub_); node B has its own
// evhttp server and Hub on the same loop. Both attach to redis_.
class RedisNodesTest : public HttpFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Start());
    HttpFixture::SetUp();
  }

  void TearDown() override {
    StopNodes();
    for (auto& p : procs_) {
      int status = p->Stop();
      if (status != -1) {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << "evhttp_hello on port " << p->port() << " ended with status "
            << status << ":\n"
            << p->Log();
      }
    }
    HttpFixture::TearDown();
  }

  // StopNodes frees both in-process nodes (servers, links, Hubs); pending
  // publish callbacks fire with kCancelled. Idempotent.
  void StopNodes() {
    if (http_b_ != nullptr) evhttp_free(http_b_);
    http_b_ = nullptr;
    link_b_.reset();
    hub_b_.reset();
    FreeServer();
    link_a_.reset();
    hub_.reset();
  }
  // NodesGuard: declared after the locals a test's callbacks capture, it
  // stops the nodes first on every way out of the test.
  struct NodesGuard {
    RedisNodesTest* test;
    ~NodesGuard() { test->StopNodes(); }
  };

  redis::RedisOptions LinkOptions() const {
    redis::RedisOptions o;
    o.address = redis_.address();
    o.connect_timeout = milliseconds(1000);
    o.command_timeout = milliseconds(3000);
    o.reconnect_min = milliseconds(20);
    o.reconnect_max = milliseconds(200);
    return o;
  }

  // StartNodes starts nodes A and B and waits until both links are up.
  void StartNodes(HubOptions ho = {}, StreamOptions so = {}) {
    StartNodes(std::move(ho), std::move(so), LinkOptions(), LinkOptions());
  }
  void StartNodes(HubOptions ho, StreamOptions so, redis::RedisOptions ro_a,
                  redis::RedisOptions ro_b) {
    StartServer(ho, so);
    auto a = redis::Attach(hub_.get(), ro_a);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    link_a_ = std::move(a).value();
    ASSERT_TRUE(RunUntil([&] { return hub_->stats().backend.up; }));
    clients_before_b_ = ClientIds();

    http_b_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_b_, "127.0.0.1", 0);
    ASSERT_NE(bound, nullptr);
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&sa), &len);
    port_b_ = ntohs(sa.sin_port);
    ho.log = [this](LogLevel, std::string_view m) { logs_b_.emplace_back(m); };
    ho.log_level = LogLevel::kDebug;
    hub_b_ = Hub::Create(base_, ho).value();
    ASSERT_TRUE(
        evhttp::Mount(http_b_, "/events", hub_b_.get(), so).Release().ok());
    PublishOptions po;
    po.allow_unauthenticated = true;
    ASSERT_TRUE(evhttp::MountPublish(http_b_, "/publish", hub_b_.get(), po)
                    .Release()
                    .ok());
    auto b = redis::Attach(hub_b_.get(), ro_b);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    link_b_ = std::move(b).value();
    ASSERT_TRUE(RunUntil([&] {
      return hub_->stats().backend.up && hub_b_->stats().backend.up;
    }));
  }

  // ClientIds lists the ids of the connections Redis has (CLIENT LIST),
  // the one asking excepted.
  std::set<std::string> ClientIds() const {
    std::set<std::string> ids;
    ReplyPtr r = redis_.Command({"CLIENT", "LIST"});
    std::istringstream lines(Str(r.get()));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("id=", 0) != 0 ||
          line.find("cmd=client|list") != std::string::npos)
        continue;
      ids.insert(line.substr(3, line.find(' ') - 3));
    }
    return ids;
  }

  // PublishOn publishes through `hub` and waits for the callback.
  Result<std::string> PublishOn(Hub* hub, const std::string& topic,
                                const std::string& type,
                                const std::string& data) {
    auto got = std::make_shared<std::optional<Result<std::string>>>();
    Status s = hub->Publish(topic, {type, data}, [got](Result<std::string> r) {
      *got = std::move(r);
    });
    if (!s.ok()) return s;
    if (!RunUntil([&] { return got->has_value(); }))
      return InternalError("no publish callback within 5 s");
    return **got;
  }

  // PostOn publishes over HTTP, driving the loop (for in-process nodes).
  PostReply PostOn(int port, const std::string& target,
                   const std::string& body) {
    TestClient c(port, PostRequest(target, body));
    PostReply out;
    if (!RunUntil([&] { return c.closed(); })) return out;
    out.status = c.status();
    out.body = c.body();
    return out;
  }

  Publisher HubProbes(Hub* hub, const std::string& topic) {
    return [this, hub, topic](const std::string& data) {
      Result<std::string> id = PublishOn(hub, topic, "probe", data);
      return id.ok() ? *id : std::string();
    };
  }
  Publisher HttpProbes(int port, const std::string& topic) {
    return [port, topic](const std::string& data) {
      return IdOf(
          BlockingPost(port, "/publish?topic=" + topic + "&event=probe", data)
              .body);
    };
  }

  // WaitLive publishes probes until every client got the latest one: from
  // then on they are live, and no probe is still on its way.
  bool WaitLive(const std::vector<TestClient*>& clients,
                const Publisher& publish) {
    for (int i = 0; i < 50; ++i) {
      std::string data = "probe-" + std::to_string(i);
      if (publish(data).empty()) {
        RunFor(milliseconds(50));
        continue;
      }
      if (RunUntil(
              [&] {
                for (TestClient* c : clients)
                  if (c->events.empty() || c->events.back().data != data)
                    return false;
                return true;
              },
              milliseconds(200)))
        return true;
    }
    return false;
  }

  NodeProcess* Spawn(int port) {
#ifdef EVSSE_HELLO_BIN
    const char* binary = EVSSE_HELLO_BIN;
#else
    const char* binary = "evhttp_hello";  // tests skip before spawning
#endif
    procs_.push_back(std::make_unique<NodeProcess>(
        binary, redis_.dir() + "/node-" + std::to_string(port) + "-" +
                    std::to_string(procs_.size()) + ".log"));
    EXPECT_TRUE(procs_.back()->Start(port, redis_.address()));
    return procs_.back().get();
  }

  RedisServer redis_;
  std::unique_ptr<redis::Link> link_a_;
  struct ::evhttp* http_b_ = nullptr;
  std::unique_ptr<Hub> hub_b_;
  std::unique_ptr<redis::Link> link_b_;
  int port_b_ = 0;
  std::set<std::string> clients_before_b_;  // Redis client ids of node A
  std::vector<std::string> logs_b_;
  std::vector<std::unique_ptr<NodeProcess>> procs_;
};

// ---- 1. Two Hubs in one process ---------------------------------------------

TEST_F(RedisNodesTest, TwoHubsOneLoopShareEventsWithTheStreamIds) {
  StartNodes();
  auto on_b = Subscribe(port_b_, "/events?topic=orders");
  auto on_a = Get("/events?topic=orders");
  ASSERT_TRUE(
      WaitLive({on_a.get(), on_b.get()}, HubProbes(hub_.get(), "orders")));

  Result<std::string> id1 = PublishOn(hub_.get(), "orders", "n", "shipped");
  ASSERT_TRUE(id1.ok()) << id1.status().ToString();
  PostReply posted =
      PostOn(port_, "/publish?topic=orders&event=n", "delivered");
  ASSERT_EQ(posted.status, 200) << posted.body;
  std::string id2 = IdOf(posted.body);
  EXPECT_TRUE(IsRedisId(*id1)) << *id1;
  EXPECT_TRUE(IsRedisId(id2)) << id2;

  ASSERT_TRUE(RunUntil([&] {
    return Numbered(*on_b).size() == 2 && Numbered(*on_a).size() == 2;
  }));
  RunFor(milliseconds(20));
  const std::vector<std::string> want{*id1, id2};
  EXPECT_EQ(NumberedIds(*on_b), want);
  EXPECT_EQ(NumberedIds(*on_a), want);
  EXPECT_EQ(Numbered(*on_b)[0].data, "shipped");
  EXPECT_EQ(Numbered(*on_b)[1].data, "delivered");

  // The ids are the stream's: the last two entries, read back by XRANGE.
  std::vector<StoredEntry> stream = ReadStream(redis_, "orders");
  ASSERT_GE(stream.size(), 2u);
  EXPECT_EQ(stream[stream.size() - 2].id, *id1);
  EXPECT_EQ(stream.back().id, id2);
  EXPECT_EQ(stream.back().type, "n");
  EXPECT_EQ(stream.back().data, "delivered");
  EXPECT_EQ(IdsOfType(stream, "n"), want);
  EXPECT_EQ(hub_->stats().publish_errors, 0u);
  EXPECT_EQ(hub_b_->stats().publish_errors, 0u);
}

// ---- 2. Two server processes ------------------------------------------------

TEST_F(RedisNodesTest, TwoProcessesPublishOnOneReceiveOnTheOther) {
#ifndef EVSSE_HELLO_BIN
  GTEST_SKIP() << "evhttp_hello is not built in this configuration "
                  "(EVSSE_BUILD_EXAMPLES=OFF); the plain build runs this test";
#endif
  NodeProcess* a = Spawn(FreeTcpPort());
  NodeProcess* b = Spawn(FreeTcpPort());
  ASSERT_FALSE(HasFailure());
  auto c = Subscribe(b->port(), "/events?topic=news");
  ASSERT_TRUE(WaitLive({c.get()}, HttpProbes(a->port(), "news")));

  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    PostReply r = BlockingPost(a->port(), "/publish?topic=news&event=n",
                               "item " + std::to_string(i));
    ASSERT_EQ(r.status, 200) << r.body;
    ids.push_back(IdOf(r.body));
    EXPECT_TRUE(IsRedisId(ids.back())) << r.body;
  }
  ASSERT_TRUE(RunUntil([&] { return Numbered(*c).size() == 3; }));
  RunFor(milliseconds(20));
  EXPECT_EQ(NumberedIds(*c), ids);
  std::vector<std::string> datas;
  for (const auto& e : Numbered(*c)) datas.push_back(e.data);
  EXPECT_EQ(datas, (std::vector<std::string>{"item 0", "item 1", "item 2"}));
  EXPECT_EQ(IdsOfType(ReadStream(redis_, "news"), "n"), ids);
}

// ---- 3. Resume on another node after a client dies mid-stream ---------------

TEST_F(RedisNodesTest, ResumeOnTheOtherProcessGivesTheExactSequence) {
#ifndef EVSSE_HELLO_BIN
  GTEST_SKIP() << "evhttp_hello is not built in this configuration "
                  "(EVSSE_BUILD_EXAMPLES=OFF); the plain build runs this test";
#endif
  NodeProcess* a = Spawn(FreeTcpPort());
  NodeProcess* b = Spawn(FreeTcpPort());
  ASSERT_FALSE(HasFailure());
  auto first = Subscribe(a->port(), "/events?topic=seq");
  ASSERT_TRUE(WaitLive({first.get()}, HttpProbes(b->port(), "seq")));

  // A publisher thread keeps publishing, alternately on A and on B.
  constexpr int kEvents = 300;
  std::mutex mu;
  std::vector<std::string> published;
  std::atomic<bool> publish_failed{false};
  std::atomic<int> sent{0};
  std::thread publisher([&] {
    for (int i = 0; i < kEvents && !publish_failed; ++i) {
      int port = i % 2 == 0 ? a->port() : b->port();
      PostReply r =
          BlockingPost(port, "/publish?topic=seq&event=n", std::to_string(i));
      if (r.status != 200) {
        publish_failed = true;
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        published.push_back(IdOf(r.body));
      }
      ++sent;
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  bool mid = RunUntil([&] { return NumberedCount(*first) >= 60; });
  std::string last = first->last_event_id();
  first->Reset();  // the client dies mid-stream (RST)
  RunFor(milliseconds(30));
  int sent_at_resume = sent;
  auto second = Subscribe(b->port(), "/events?topic=seq", last);
  bool done = RunUntil(
      [&] {
        if (sent < kEvents && !publish_failed) return false;
        std::lock_guard<std::mutex> lock(mu);
        return !second->events.empty() && !published.empty() &&
               second->events.back().last_event_id == published.back();
      },
      std::chrono::seconds(20));
  publisher.join();
  ASSERT_TRUE(mid);
  ASSERT_FALSE(publish_failed) << a->Log() << b->Log();
  ASSERT_TRUE(done);
  RunFor(milliseconds(20));
  ASSERT_EQ(published.size(), static_cast<size_t>(kEvents));
  EXPECT_LT(Numbered(*first).size(), static_cast<size_t>(sent_at_resume));

  // first's events, then second's: exactly what was published, in order.
  std::vector<std::string> all = NumberedIds(*first);
  std::vector<std::string> datas;
  for (const auto& e : Numbered(*first)) datas.push_back(e.data);
  for (const auto& e : second->events) {
    EXPECT_EQ(e.type, "n") << "unexpected " << e.type << " " << e.data;
    all.push_back(e.last_event_id);
    datas.push_back(e.data);
  }
  EXPECT_EQ(all, published);
  ASSERT_EQ(datas.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) EXPECT_EQ(datas[i], std::to_string(i));
  EXPECT_FALSE(second->closed());
}

// ---- 4. Redis stops and restarts while publishing ---------------------------

// A closed-loop publisher on the test loop: one Hub::Publish at a time.
struct Outcome {
  Clock::time_point sent;
  Clock::time_point done;
  Result<std::string> id = InternalError("pending");
  // The turns of the test's loop (run_publishing) when it was sent and
  // answered: a publish that fails at once is answered within the next
  // turn, one that waits (a timer, a reply) many turns later.
  size_t sent_turn = 0;
  size_t done_turn = 0;
};

TEST_F(RedisNodesTest, RedisRestartLosesNoAcceptedEvent) {
  // redis-server runs with --save "": a save point makes its SIGTERM
  // shutdown write dump.rdb, which the restart loads (same dir), so every
  // write Redis executed before it stopped survives.
  ReplyPtr cfg = redis_.Command({"CONFIG", "SET", "save", "3600 1"});
  ASSERT_TRUE(cfg && cfg->type == REDIS_REPLY_STATUS);
  StreamOptions so;
  so.heartbeat = milliseconds(100);
  // Node B comes back from the outage well after A (it retries after 1.5
  // to 3 s), so events published on A meanwhile reach B only by back-fill.
  redis::RedisOptions ro_b = LinkOptions();
  ro_b.reconnect_min = milliseconds(3000);
  ro_b.reconnect_max = milliseconds(3000);
  HubOptions ho;
  ho.history_max_events = 100000;  // the streams' MAXLEN: nothing trimmed
  StartNodes(ho, so, LinkOptions(), ro_b);
  std::vector<std::unique_ptr<TestClient>> clients;
  clients.push_back(Get("/events?topic=live"));
  clients.push_back(Get("/events?topic=live"));
  clients.push_back(Subscribe(port_b_, "/events?topic=live"));
  clients.push_back(Subscribe(port_b_, "/events?topic=live"));
  std::vector<TestClient*> raw;
  for (auto& c : clients) raw.push_back(c.get());
  ASSERT_TRUE(WaitLive(raw, HubProbes(hub_.get(), "live")));

  std::vector<Outcome> outcomes;
  bool in_flight = false;
  bool publishing = true;
  size_t turn = 0;
  NodesGuard guard{this};
  auto pump = [&] {
    // One publish every 2 ms at most, each after the previous answer.
    if (!publishing || in_flight) return;
    if (!outcomes.empty() &&
        Clock::now() - outcomes.back().sent < milliseconds(2))
      return;
    in_flight = true;
    size_t i = outcomes.size();
    outcomes.push_back({Clock::now(), {}, InternalError("pending"), turn});
    Status s = hub_->Publish("live", {"n", std::to_string(i)},
                             [&, i](Result<std::string> r) {
                               outcomes[i].done = Clock::now();
                               outcomes[i].done_turn = turn;
                               outcomes[i].id = std::move(r);
                               in_flight = false;
                             });
    ASSERT_TRUE(s.ok()) << s.ToString();
  };
  auto oks = [&] {
    size_t n = 0;
    for (const auto& o : outcomes) n += o.id.ok();
    return n;
  };
  auto run_publishing = [&](const std::function<bool()>& until,
                            milliseconds timeout) {
    return RunUntil(
        [&] {
          ++turn;
          pump();
          return until();
        },
        timeout);
  };

  ASSERT_TRUE(run_publishing([&] { return oks() >= 50; }, milliseconds(5000)));
  std::vector<int> heartbeats_before;
  for (auto& c : clients) heartbeats_before.push_back(c->comments);
  const std::string epoch_before =
      outcomes[0].id->substr(0, outcomes[0].id->find('.'));

  redis_.Stop();
  size_t first_after_stop = outcomes.size();
  auto stopped_at = Clock::now();
  // The outage: every publish fails at once, on both nodes, and the
  // subscribers' streams stay open with their heartbeats: publish until 20
  // have failed after the first and every client had 3 heartbeats.
  ASSERT_TRUE(run_publishing(
      [&] {
        if (outcomes.size() < first_after_stop + 22 ||
            Clock::now() - stopped_at < milliseconds(600))
          return false;
        for (size_t k = 0; k < clients.size(); ++k)
          if (clients[k]->comments - heartbeats_before[k] < 3) return false;
        return true;
      },
      milliseconds(20000)));
  PostReply refused = PostOn(port_b_, "/publish?topic=live&event=n", "x");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(hub_->stats().backend.up);
  EXPECT_FALSE(hub_b_->stats().backend.up);
  size_t failed_fast = 0;
  for (size_t i = first_after_stop + 1; i < outcomes.size(); ++i) {
    ASSERT_FALSE(outcomes[i].id.ok()) << i;
    EXPECT_EQ(outcomes[i].id.status().code(), StatusCode::kUnavailable)
        << outcomes[i].id.status().ToString();
    EXPECT_LE(outcomes[i].done_turn, outcomes[i].sent_turn + 1) << i;
    ++failed_fast;
  }
  EXPECT_GE(failed_fast, 20u);
  for (size_t k = 0; k < clients.size(); ++k) {
    EXPECT_FALSE(clients[k]->closed()) << k;
    EXPECT_GE(clients[k]->comments - heartbeats_before[k], 3) << k;
  }

  ASSERT_TRUE(redis_.Start());
  // A is back first and publishes while B is still down.
  size_t oks_at_restart = oks();
  ASSERT_TRUE(run_publishing(
      [&] { return hub_->stats().backend.up && oks() >= oks_at_restart + 20; },
      milliseconds(3000)));
  EXPECT_FALSE(hub_b_->stats().backend.up);
  size_t oks_b_down = oks();
  ASSERT_TRUE(run_publishing(
      [&] { return hub_b_->stats().backend.up && oks() >= oks_b_down + 20; },
      milliseconds(5000)));
  publishing = false;
  ASSERT_TRUE(RunUntil([&] { return !in_flight; }));

  // What Redis holds is exactly what every subscriber got, once, in order;
  // it holds every accepted event and at most the one publish that was in
  // flight when Redis stopped (stored, but its answer was lost).
  std::vector<StoredEntry> stream = ReadStream(redis_, "live");
  std::vector<std::string> stored = IdsOfType(stream, "n");
  std::set<std::string> stored_set(stored.begin(), stored.end());
  std::vector<std::string> accepted;
  for (const auto& o : outcomes)
    if (o.id.ok()) accepted.push_back(*o.id);
  std::vector<std::string> missing;
  for (const std::string& id : accepted)
    if (stored_set.count(id) == 0) missing.push_back(id);
  EXPECT_TRUE(missing.empty()) << missing.size() << " accepted events lost, "
                               << "first " << missing.front();
  EXPECT_LE(stored.size(), accepted.size() + 1);
  EXPECT_GE(stored.size(), accepted.size());
  EXPECT_EQ(stored.front().substr(0, stored.front().find('.')), epoch_before);
  // A server restarted from its files may have lost its last writes: the
  // stream went on under a new epoch that continues the old one where the
  // copy ends (nothing was lost here, so no subscriber noticed).
  ReplyPtr fork = redis_.Command({"LINDEX", "evsse:{live}:f", "0"});
  ASSERT_TRUE(fork && fork->type == REDIS_REPLY_STRING);
  EXPECT_EQ(Str(fork.get()).substr(0, epoch_before.size() + 1),
            epoch_before + " ");
  EXPECT_NE(stored.back().substr(0, stored.back().find('.')), epoch_before);
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& c : clients)
          if (NumberedCount(*c) < stored.size()) return false;
        return true;
      },
      milliseconds(5000)));
  RunFor(milliseconds(50));
  for (size_t k = 0; k < clients.size(); ++k) {
    EXPECT_EQ(NumberedIds(*clients[k]), stored) << "client " << k;
    EXPECT_FALSE(clients[k]->closed()) << k;
  }
  EXPECT_GE(link_a_->stats().reconnects, 1u);
  EXPECT_GE(link_b_->stats().reconnects, 1u);
  EXPECT_GE(hub_b_->stats().backend.backfilled_events, 20u);
  EXPECT_EQ(hub_->stats().gaps + hub_b_->stats().gaps, 0u);
}

// Without persistence a restarted Redis has lost the streams. A node whose
// link was down while events were published cannot back-fill them any
// more; its subscribers must learn of the gap (closed, then the gap event
// on resume, as for a recreated stream), never go on as if up to date.
TEST_F(RedisNodesTest, StreamWipedWhileANodeWasAwayIsNotSilentlySkipped) {
  redis::RedisOptions ro_b = LinkOptions();
  ro_b.reconnect_min = milliseconds(3000);
  ro_b.reconnect_max = milliseconds(3000);
  StartNodes({}, {}, LinkOptions(), ro_b);
  auto on_a = Get("/events?topic=w");
  auto on_b = Subscribe(port_b_, "/events?topic=w");
  ASSERT_TRUE(WaitLive({on_a.get(), on_b.get()}, HubProbes(hub_.get(), "w")));
  Result<std::string> seen = PublishOn(hub_.get(), "w", "n", "seen");
  ASSERT_TRUE(seen.ok());
  ASSERT_TRUE(RunUntil([&] { return NumberedCount(*on_b) == 1; }));
  const std::string last_b = on_b->last_event_id();

  // Node B's two connections are those that appeared when it attached:
  // kill them, so that B is away (it retries after 1.5 to 3 s).
  std::vector<std::string> b_conns;
  for (const std::string& id : ClientIds())
    if (clients_before_b_.count(id) == 0) b_conns.push_back(id);
  ASSERT_EQ(b_conns.size(), 2u);
  for (const std::string& id : b_conns)
    ASSERT_TRUE(redis_.Command({"CLIENT", "KILL", "ID", id}) != nullptr);
  ASSERT_TRUE(RunUntil([&] { return !hub_b_->stats().backend.up; }));

  // Published while B is away: only A's subscriber gets it.
  Result<std::string> missed = PublishOn(hub_.get(), "w", "n", "missed");
  ASSERT_TRUE(missed.ok());
  ASSERT_TRUE(RunUntil([&] { return NumberedCount(*on_a) == 2; }));
  // Redis restarts without its data; B comes back and syncs, then an event
  // is published on the new stream.
  ASSERT_TRUE(redis_.Restart());
  // B is back once its Hub logs the link up again: every watched topic is
  // synced (HubStats::backend.up only says connected).
  auto ups = [](const std::vector<std::string>& logs) {
    return std::count(logs.begin(), logs.end(), "backend link up");
  };
  ASSERT_TRUE(RunUntil([&] { return ups(logs_b_) == 2 && ups(logs_) == 2; },
                       milliseconds(6000)));
  Result<std::string> after = PublishOn(hub_.get(), "w", "n", "after");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_TRUE(RunUntil([&] {
    return NumberedCount(*on_a) == 3 || on_a->chunked_end() || on_a->closed();
  }));
  RunFor(milliseconds(200));
  // B's subscriber missed "missed": it must not just carry on with "after".
  std::vector<std::string> b_datas;
  for (const auto& e : on_b->events)
    if (e.type != "probe") b_datas.push_back(e.type + ":" + e.data);
  EXPECT_TRUE(on_b->closed() || on_b->chunked_end())
      << "B's subscriber went on without a gap; it got: "
      << ::testing::PrintToString(b_datas);
  EXPECT_EQ(b_datas, std::vector<std::string>{"n:seen"});
  auto resumed = Subscribe(port_b_, "/events?topic=w", last_b);
  ASSERT_TRUE(RunUntil([&] { return !resumed->events.empty(); }));
  EXPECT_EQ(resumed->events[0].type, "gap");
  EXPECT_EQ(resumed->events[0].data, R"({"topics":["w"],"reason":"unknown"})");
}

// ---- 5. Trimmed history -----------------------------------------------------

TEST_F(RedisNodesTest, TrimmedStreamGivesTheGapEventOnAnotherNode) {
  redis::RedisOptions ro = LinkOptions();
  ro.max_events = 10;
  StartNodes({}, {}, ro, ro);
  // 1000 events on A, pipelined; nobody follows the topic on either node.
  constexpr int kEvents = 1000;
  std::vector<std::optional<Result<std::string>>> got(kEvents);
  NodesGuard guard{this};
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(hub_->Publish("t", {"n", std::to_string(i)},
                              [&got, i](Result<std::string> r) {
                                got[i] = std::move(r);
                              })
                    .ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(got.begin(), got.end(),
                       [](const auto& g) { return g.has_value(); });
  }));
  std::vector<std::string> ids;
  for (auto& g : got) {
    ASSERT_TRUE(g->ok()) << g->status().ToString();
    ids.push_back(**g);
  }
  // MAXLEN ~ 10 trims whole macro nodes (100 entries by default).
  std::vector<StoredEntry> stream = ReadStream(redis_, "t");
  ASSERT_GE(stream.size(), 10u);
  ASSERT_LT(stream.size(), 10u + 100u);
  EXPECT_EQ(stream.back().id, ids.back());

  auto gap = Subscribe(port_b_, "/events?topic=t", ids.front());
  ASSERT_TRUE(RunUntil([&] { return gap->events.size() == 1; }));
  EXPECT_EQ(gap->events[0].type, "gap");
  EXPECT_EQ(gap->events[0].data, R"({"topics":["t"],"reason":"expired"})");
  EXPECT_EQ(gap->events[0].last_event_id, ids.back());

  // A cursor at the oldest kept entry resumes with no gap and no loss.
  const size_t kept =
      std::find(ids.begin(), ids.end(), stream.front().id) - ids.begin();
  ASSERT_LT(kept, ids.size());
  auto resumed = Subscribe(port_b_, "/events?topic=t", ids[kept]);
  std::vector<std::string> want(ids.begin() + kept + 1, ids.end());
  ASSERT_TRUE(RunUntil([&] { return resumed->events.size() == want.size(); }));

  // Both go on live.
  Result<std::string> live = PublishOn(hub_.get(), "t", "n", "live");
  ASSERT_TRUE(live.ok());
  want.push_back(*live);
  ASSERT_TRUE(RunUntil([&] {
    return gap->events.size() == 2 && resumed->events.size() == want.size();
  }));
  RunFor(milliseconds(20));
  EXPECT_EQ(gap->events[1].last_event_id, *live);
  EXPECT_EQ(gap->events.size(), 2u);
  EXPECT_EQ(resumed->ids(), want);
  EXPECT_EQ(resumed->events.front().data, std::to_string(kept + 1));
  EXPECT_EQ(hub_b_->stats().gaps, 1u);
}

// The first subscriber of a topic on a node: its response starts only once
// the node follows the topic (subscribed, stream tail read), so every event
// published after the response started reaches it. A publisher thread
// publishes without pause on node A to 40 topics while fresh subscribers of
// each connect to node B; an event whose Publish call came after a
// client saw its response's head must reach that client.
TEST_F(RedisNodesTest, FreshSubscribersMissNothingPublishedAfterTheyStarted) {
  StartNodes();
  constexpr int kTopics = 40;
  constexpr int kEvents = 4000;
  struct Sent {
    Clock::time_point called;
    std::optional<Result<std::string>> id;
  };
  std::vector<Sent> sent(kEvents);
  std::atomic<int> published{0};
  std::atomic<bool> go{false};
  NodesGuard guard{this};
  std::thread publisher([&] {
    while (!go) std::this_thread::yield();
    for (int i = 0; i < kEvents; ++i) {
      sent[i].called = Clock::now();
      Status s = hub_->Publish(
          "race-" + std::to_string(i % kTopics), {"n", std::to_string(i)},
          [&sent, i](Result<std::string> r) { sent[i].id = std::move(r); });
      EXPECT_TRUE(s.ok()) << s.ToString();
      published = i + 1;
      std::this_thread::sleep_for(std::chrono::microseconds(250));
    }
  });
  struct Sub {
    std::unique_ptr<TestClient> client;
    std::optional<Clock::time_point> head;
  };
  std::vector<Sub> subs(kTopics);
  go = true;
  // One fresh subscriber per topic, spread over the publishing.
  for (int k = 0; k < kTopics; ++k) {
    subs[k].client =
        Subscribe(port_b_, "/events?topic=race-" + std::to_string(k));
    RunUntil(
        [&] {
          for (Sub& s : subs)
            if (s.client && !s.head && s.client->has_head())
              s.head = Clock::now();
          return false;
        },
        milliseconds(20));
  }
  ASSERT_TRUE(RunUntil([&] {
    for (Sub& s : subs)
      if (!s.head && s.client->has_head()) s.head = Clock::now();
    return published == kEvents;
  }));
  publisher.join();
  ASSERT_TRUE(RunUntil([&] {
    for (const Sent& e : sent)
      if (!e.id) return false;
    return true;
  }));
  RunFor(milliseconds(300));  // the last deliveries
  int owed_total = 0;
  for (int k = 0; k < kTopics; ++k) {
    ASSERT_TRUE(subs[k].head.has_value()) << k;
    std::vector<std::string> owed;
    for (int i = k; i < kEvents; i += kTopics) {
      ASSERT_TRUE(sent[i].id->ok()) << sent[i].id->status().ToString();
      if (sent[i].called > *subs[k].head) owed.push_back(std::to_string(i));
    }
    owed_total += static_cast<int>(owed.size());
    std::vector<std::string> got = subs[k].client->datas();
    // Nothing twice, in order, and every owed event at the end of it.
    ASSERT_GE(got.size(), owed.size()) << "topic race-" << k;
    std::vector<std::string> tail(got.end() - owed.size(), got.end());
    EXPECT_EQ(tail, owed) << "topic race-" << k;
    EXPECT_TRUE(std::is_sorted(got.begin(), got.end(),
                               [](const std::string& a, const std::string& b) {
                                 return std::stoi(a) < std::stoi(b);
                               }))
        << "topic race-" << k;
  }
  EXPECT_GT(owed_total, kEvents / 4);
}

// One-shot topics expire from Redis (stream_ttl after their last publish):
// Redis does not grow with them, and a client resuming on a topic that
// expired is told of the gap, on any node.
TEST_F(RedisNodesTest, ExpiredTopicKeysGiveTheGapEventOnAnotherNode) {
  redis::RedisOptions ro = LinkOptions();
  ro.stream_ttl = milliseconds(500);
  StartNodes({}, {}, ro, ro);
  NodesGuard guard{this};
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    Result<std::string> id =
        PublishOn(hub_.get(), "order-" + std::to_string(i), "n", "placed");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    ids.push_back(*id);
  }
  auto keys = [&] {
    ReplyPtr r = redis_.Command({"DBSIZE"});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  };
  // A stream, an epoch and a writer (failover forks) per topic.
  EXPECT_EQ(keys(), 60);
  ASSERT_TRUE(RunUntil([&] { return keys() == 0; }, milliseconds(10000)));
  auto c = Subscribe(port_b_, "/events?topic=order-7", ids[7]);
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_EQ(c->events[0].data, R"({"topics":["order-7"],"reason":"unknown"})");
  // The topic lives again with its next publish, under a new epoch.
  Result<std::string> again = PublishOn(hub_.get(), "order-7", "n", "shipped");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->events[1].data, "shipped");
  EXPECT_EQ(c->events[1].last_event_id, *again);
}

// Clients that reconnect together to a node that never saw the topic: the
// node reads each page from Redis once (MULTI / metadata script / XRANGE /
// EXEC), and every client gets the exact sequence.
TEST_F(RedisNodesTest, ClientsResumingTogetherShareThePageReads) {
  redis::RedisOptions ro = LinkOptions();
  ro.max_events = 5000;
  StartNodes({}, {}, ro, ro);
  constexpr int kEvents = 2501;  // the cursor, then 2500: three pages
  std::vector<std::optional<Result<std::string>>> got(kEvents);
  NodesGuard guard{this};
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(hub_->Publish("t", {"n", std::to_string(i)},
                              [&got, i](Result<std::string> r) {
                                got[i] = std::move(r);
                              })
                    .ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(got.begin(), got.end(),
                       [](const auto& g) { return g.has_value(); });
  }));
  std::vector<std::string> ids;
  for (auto& g : got) {
    ASSERT_TRUE(g->ok()) << g->status().ToString();
    ids.push_back(**g);
  }
  std::vector<std::unique_ptr<TestClient>> cs;
  for (int i = 0; i < 5; ++i)
    cs.push_back(Subscribe(port_b_, "/events?topic=t", ids.front()));
  const std::vector<std::string> want(ids.begin() + 1, ids.end());
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& c : cs)
          if (c->events.size() < want.size()) return false;
        return true;
      },
      std::chrono::seconds(30)));
  for (auto& c : cs) {
    EXPECT_EQ(c->ids(), want);
    EXPECT_EQ(c->events.back().data, std::to_string(kEvents - 1));
    EXPECT_FALSE(c->closed());
  }
  HubStats st = hub_b_->stats();
  EXPECT_EQ(st.replays, 5u);
  EXPECT_EQ(st.gaps, 0u);
  EXPECT_EQ(st.replay_page_requests, 15u);
  EXPECT_EQ(st.backend.replay_fetches, 3u);  // ceil(2500 / 1000)
  EXPECT_EQ(st.replay_pages_shared, 12u);
}

// ---- 6. A flood from two threads --------------------------------------------

TEST_F(RedisNodesTest, FloodFromTwoThreadsStaysInOrderOnBothNodes) {
  HubOptions ho;
  ho.history_max_events = 10000;  // also the streams' MAXLEN
  StartNodes(ho);
  std::vector<std::unique_ptr<TestClient>> clients;
  clients.push_back(Get("/events?topic=flood"));
  clients.push_back(Get("/events?topic=flood"));
  clients.push_back(Subscribe(port_b_, "/events?topic=flood"));
  clients.push_back(Subscribe(port_b_, "/events?topic=flood"));
  std::vector<TestClient*> raw;
  for (auto& c : clients) raw.push_back(c.get());
  ASSERT_TRUE(WaitLive(raw, HubProbes(hub_.get(), "flood")));

  // Thread 0 publishes on A, thread 1 on B; callbacks run on this loop.
  constexpr int kPerThread = 2500;
  std::vector<std::vector<std::string>> ids(2);
  std::atomic<int> refused{0};
  int callbacks = 0, failed = 0;
  NodesGuard guard{this};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    Hub* hub = t == 0 ? hub_.get() : hub_b_.get();
    ids[t].resize(kPerThread);
    threads.emplace_back([&, t, hub] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = hub->Publish(
            "flood", {"n", std::to_string(t) + ":" + std::to_string(i)},
            [&, t, i](Result<std::string> r) {
              ++callbacks;
              if (r.ok()) {
                ids[t][i] = *r;
              } else {
                ++failed;
              }
            });
        if (!s.ok()) ++refused;
      }
    });
  }
  bool all = RunUntil(
      [&] {
        if (callbacks + refused < 2 * kPerThread) return false;
        for (auto& c : clients)
          if (NumberedCount(*c) < static_cast<size_t>(2 * kPerThread))
            return false;
        return true;
      },
      std::chrono::seconds(30));
  for (auto& th : threads) th.join();
  ASSERT_TRUE(all) << "callbacks " << callbacks;
  EXPECT_EQ(refused, 0);
  EXPECT_EQ(failed, 0);
  RunFor(milliseconds(50));

  // Every subscriber got the stream's order, which keeps each thread's.
  std::vector<std::string> stored = IdsOfType(ReadStream(redis_, "flood"), "n");
  ASSERT_EQ(stored.size(), static_cast<size_t>(2 * kPerThread));
  std::set<std::string> published(ids[0].begin(), ids[0].end());
  published.insert(ids[1].begin(), ids[1].end());
  EXPECT_EQ(published, std::set<std::string>(stored.begin(), stored.end()));
  for (size_t k = 0; k < clients.size(); ++k) {
    auto got = Numbered(*clients[k]);
    ASSERT_EQ(got.size(), stored.size()) << k;
    EXPECT_EQ(NumberedIds(*clients[k]), stored) << k;
    int next[2] = {0, 0};
    for (const auto& e : got) {
      int t = e.data[0] - '0';
      ASSERT_TRUE(t == 0 || t == 1) << e.data;
      ASSERT_EQ(e.data, std::to_string(t) + ":" + std::to_string(next[t]))
          << "client " << k;
      ASSERT_EQ(e.last_event_id, ids[t][next[t]]) << "client " << k;
      ++next[t];
    }
    EXPECT_FALSE(clients[k]->closed()) << k;
  }
  EXPECT_EQ(hub_->stats().slow_consumer_closes, 0u);
  EXPECT_EQ(hub_b_->stats().slow_consumer_closes, 0u);
}

// ---- 7. A node process crashes and restarts ---------------------------------

TEST_F(RedisNodesTest, RestartedProcessContinuesFromAnOldId) {
#ifndef EVSSE_HELLO_BIN
  GTEST_SKIP() << "evhttp_hello is not built in this configuration "
                  "(EVSSE_BUILD_EXAMPLES=OFF); the plain build runs this test";
#endif
  int port_a = FreeTcpPort();
  NodeProcess* a = Spawn(port_a);
  NodeProcess* b = Spawn(FreeTcpPort());
  ASSERT_FALSE(HasFailure());
  auto before = Subscribe(port_a, "/events?topic=r");
  ASSERT_TRUE(WaitLive({before.get()}, HttpProbes(port_a, "r")));
  std::vector<std::string> ids;
  auto publish = [&](int port, int i) {
    PostReply r =
        BlockingPost(port, "/publish?topic=r&event=n", std::to_string(i));
    EXPECT_EQ(r.status, 200) << r.body;
    ids.push_back(IdOf(r.body));
  };
  for (int i = 0; i < 10; ++i) publish(port_a, i);
  ASSERT_TRUE(RunUntil([&] { return Numbered(*before).size() == 10; }));
  EXPECT_EQ(NumberedIds(*before), ids);
  const std::string last = before->last_event_id();

  a->Kill();  // kill -9: no drain, no goodbye
  ASSERT_TRUE(RunUntil([&] { return before->closed(); }));
  for (int i = 10; i < 20; ++i) publish(b->port(), i);

  NodeProcess* again = Spawn(port_a);  // a new process on the same port
  ASSERT_FALSE(HasFailure());
  auto resumed = Subscribe(port_a, "/events?topic=r", last);
  auto older = Subscribe(port_a, "/events?topic=r", ids[4]);
  ASSERT_TRUE(RunUntil([&] {
    return resumed->events.size() == 10 && older->events.size() == 15;
  }));
  publish(b->port(), 20);
  ASSERT_TRUE(RunUntil([&] {
    return resumed->events.size() == 11 && older->events.size() == 16;
  }));
  RunFor(milliseconds(20));
  EXPECT_EQ(resumed->ids(),
            std::vector<std::string>(ids.begin() + 10, ids.end()));
  EXPECT_EQ(older->ids(), std::vector<std::string>(ids.begin() + 5, ids.end()));
  for (const auto& e : resumed->events) EXPECT_EQ(e.type, "n");
  EXPECT_EQ(resumed->events.front().data, "10");
  EXPECT_EQ(older->events.front().data, "5");
  EXPECT_NE(again->pid(), -1);
}

}  // namespace
}  // namespace evsse::testing
