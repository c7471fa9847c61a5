// Multi-node failover on one Redis (issue 7): three examples/evhttp_hello
// processes on a private redis-server, nine evsse::Client subscribers spread
// over them (single-topic and one three-topic connection per node, whose
// id is a composite cursor), and a publisher thread posting a numbered
// sequence at a steady rate, round-robin over the nodes. Mid-stream a node
// is killed with SIGKILL (its clients fail over to the other nodes with
// Last-Event-ID), or redis-server is restarted. Every client must end with
// exactly the accepted events of its topics, in order, once each.
//
// The publisher records the outcome of every POST:
//  - accepted: 200 with an id;
//  - rejected: a clear "not published" (connection refused, 503) on every
//    node it tried; such an event must never be delivered;
//  - unknown: the request was sent and the answer lost (node killed, 504):
//    it may be stored. It must then reach every client of its topic exactly
//    once, or none of them.
// It retries a sequence number on another node only after a clear error.
//
// Redis persistence: the fixture starts redis-server with --save '' and
// --appendonly no; the restart test sets a save point (CONFIG SET save) so
// that the SIGTERM shutdown writes dump.rdb, which the restart (same dir)
// loads: every write Redis executed before it stopped survives.
//
// FAILOVER_SECONDS=N (and FAILOVER_RATE=events/s) turn on the soak test,
// which repeats node kills and Redis restarts for N seconds and prints its
// figures (tests/RELIABILITY.md).
#include <event2/event.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "evsse/client.h"
#include "failover_fixture.h"
#include "failover_support.h"
#include "node_process.h"
#include "redis_fixture.h"
#include "run_loop.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kTopics{"f0", "f1", "f2"};

using Sub = SequenceSub;

class FailoverTest : public FailoverFixture {
 protected:
  void SetUp() override {
    std::string why = SkipReason(kHelloBin, "FAILOVER_SECONDS");
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_NO_FATAL_FAILURE(SetUpLoop());
    topics_ = kTopics;
    publisher_rate_ = EnvInt("FAILOVER_RATE", 200);
    ASSERT_TRUE(redis_.Start());
    ASSERT_TRUE(SaveOnShutdown());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(StartNode(
          kHelloBin, redis_.dir() + "/node-" + std::to_string(i) + ".log",
          {"--redis", redis_.address()}));
    }
  }

  // SaveOnShutdown sets a save point: the SIGTERM shutdown then writes
  // dump.rdb, and the next Start (same dir) loads it.
  ::testing::AssertionResult SaveOnShutdown() {
    ReplyPtr r = redis_.Command({"CONFIG", "SET", "save", "3600 1"});
    if (r && r->type == REDIS_REPLY_STATUS)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "CONFIG SET save failed";
  }

  // KillNode: SIGKILL, and the time it happened.
  Clock::time_point KillNode(int n) {
    nodes_[n]->Kill();
    return Clock::now();
  }

  // RestartRedis: SIGTERM (dump.rdb written), `down` later a new
  // redis-server on the same dir and address.
  ::testing::AssertionResult RestartRedis(milliseconds down) {
    redis_.Stop();
    RunFor(down);
    auto started = redis_.Start();
    if (!started) return started;
    return SaveOnShutdown();
  }

  // StopAndCheck stops the publisher, waits until every client has every
  // accepted event of its topics, and checks each client's sequence.
  void StopAndCheck() {
    std::vector<Outcome> outcomes;
    SequenceCheck check = StopAndCollect(&outcomes);
    for (const std::string& f : check.failures) ADD_FAILURE() << f;
    PublisherCounts c = publisher_->Counts();
    EXPECT_GT(c.accepted, 0u);
    figures_ = "events accepted=" + std::to_string(c.accepted) +
               " rejected=" + std::to_string(c.rejected) +
               " unknown=" + std::to_string(c.unknown) +
               " retried=" + std::to_string(c.retried) +
               " delivered=" + std::to_string(check.delivered) +
               " losses=" + std::to_string(check.losses) +
               " duplicates=" + std::to_string(check.duplicates) +
               " gaps=" + std::to_string(check.gaps);
    std::printf("[figures] %s\n", figures_.c_str());
  }

  // OnNode: the clients connected (or connecting) to node n.
  std::vector<const Sub*> OnNode(int n) const {
    std::vector<const Sub*> out;
    std::string port = ":" + std::to_string(ports_[n]) + "/";
    for (auto& s : clients_->subs())
      if (s->client->url().find(port) != std::string::npos)
        out.push_back(s.get());
    return out;
  }

  // ReconnectTimes: for each of `subs` that opened a stream after `at`,
  // the time from `at` to that open.
  static std::vector<int64_t> ReconnectTimes(
      const std::vector<const Sub*>& subs, Clock::time_point at) {
    std::vector<int64_t> out;
    for (const Sub* s : subs) {
      for (auto t : s->open_at)
        if (t > at) {
          out.push_back(
              std::chrono::duration_cast<milliseconds>(t - at).count());
          break;
        }
    }
    return out;
  }

  RedisServer redis_;
  std::string figures_;
};

TEST_F(FailoverTest, KilledNodesClientsResumeOnTheOthersWithTheExactSequence) {
  StartClients();
  ASSERT_TRUE(WaitLive());
  StartPublisher();
  ASSERT_TRUE(WaitAccepted(400, milliseconds(20000)));
  std::vector<const Sub*> on_killed = OnNode(0);
  ASSERT_EQ(on_killed.size(), 3u);
  auto killed_at = KillNode(0);
  // The killed node's clients reconnect after the server's retry (2-3 s),
  // to the next URL of their list.
  ASSERT_TRUE(
      RunUntil([&] { return ReconnectTimes(on_killed, killed_at).size() == 3; },
               milliseconds(20000)));
  ASSERT_TRUE(WaitAccepted(400, milliseconds(20000)));
  StopAndCheck();
  std::vector<int64_t> times = ReconnectTimes(on_killed, killed_at);
  std::string shown;
  for (int64_t t : times) shown += std::to_string(t) + " ";
  std::printf("[figures] reconnect ms after the kill: %s\n", shown.c_str());
  EXPECT_TRUE(OnNode(0).empty());
  for (const Sub* s : on_killed) {
    EXPECT_EQ(s->client->url().find(":" + std::to_string(ports_[0]) + "/"),
              std::string::npos)
        << "still on the killed node: " << s->client->url();
    EXPECT_GE(s->open_at.size(), 2u);
  }
}

TEST_F(FailoverTest, RedisRestartMidStreamKeepsEveryClientsSequenceExact) {
  StartClients();
  ASSERT_TRUE(WaitLive());
  StartPublisher();
  ASSERT_TRUE(WaitAccepted(400, milliseconds(20000)));
  size_t rejected_before = publisher_->Counts().rejected;
  ASSERT_TRUE(RestartRedis(milliseconds(1000)));
  // The nodes reconnect with backoff, back-fill, and accept again.
  ASSERT_TRUE(WaitAccepted(400, milliseconds(30000)));
  // The outage was seen: publishes were refused while Redis was down.
  EXPECT_GT(publisher_->Counts().rejected, rejected_before);
  StopAndCheck();
  // Clients stayed connected to their nodes through the outage.
  for (auto& s : clients_->subs())
    EXPECT_EQ(s->open_at.size(), 1u) << s->client->url();
}

// Both faults at once: a node dies while Redis is down, so its clients
// resume on nodes that cannot read the stream yet. They must neither be
// told of a gap nor stall: once Redis is back they get the exact sequence.
TEST_F(FailoverTest, NodeKilledWhileRedisIsDownStillResumesExactly) {
  StartClients();
  ASSERT_TRUE(WaitLive());
  StartPublisher();
  ASSERT_TRUE(WaitAccepted(300, milliseconds(20000)));
  std::vector<const Sub*> on_killed = OnNode(0);
  redis_.Stop();
  auto killed_at = KillNode(0);
  // The clients retry after 2-3 s, while Redis is still down.
  RunFor(milliseconds(4000));
  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(SaveOnShutdown());
  ASSERT_TRUE(WaitAccepted(400, milliseconds(30000)));
  ASSERT_TRUE(
      RunUntil([&] { return ReconnectTimes(on_killed, killed_at).size() == 3; },
               milliseconds(20000)));
  StopAndCheck();
  EXPECT_TRUE(OnNode(0).empty());
}

// The soak: FAILOVER_SECONDS of publishing with a fault after every 10 s,
// alternately a node killed (restarted 5 s later on the same port) and a
// Redis restart (down 1 s).
TEST_F(FailoverTest, Soak) {
  int seconds = EnvInt("FAILOVER_SECONDS", 0);
  StartClients();
  ASSERT_TRUE(WaitLive());
  StartPublisher();
  auto end = Clock::now() + std::chrono::seconds(seconds);
  int kills = 0, redis_restarts = 0, fault = 0;
  std::vector<int64_t> reconnects;
  while (Clock::now() + std::chrono::seconds(10) < end) {
    RunFor(milliseconds(10000));
    if (fault++ % 2 == 0) {
      int n = kills % 3;
      std::vector<const Sub*> moving = OnNode(n);
      auto at = KillNode(n);
      ++kills;
      RunFor(milliseconds(5000));
      std::vector<int64_t> times = ReconnectTimes(moving, at);
      EXPECT_EQ(times.size(), moving.size()) << "stuck clients after kill";
      reconnects.insert(reconnects.end(), times.begin(), times.end());
      ASSERT_TRUE(nodes_[n]->Start(ports_[n], redis_.address()));
    } else {
      ASSERT_TRUE(RestartRedis(milliseconds(1000)));
      ++redis_restarts;
    }
  }
  RunUntil([&] { return Clock::now() >= end; }, std::chrono::seconds(seconds));
  StopAndCheck();
  std::sort(reconnects.begin(), reconnects.end());
  std::printf(
      "[figures] seconds=%d rate=%d kills=%d redis_restarts=%d "
      "reconnects=%zu reconnect_ms min=%lld median=%lld max=%lld\n",
      seconds, EnvInt("FAILOVER_RATE", 200), kills, redis_restarts,
      reconnects.size(),
      reconnects.empty() ? -1LL : static_cast<long long>(reconnects.front()),
      reconnects.empty()
          ? -1LL
          : static_cast<long long>(reconnects[reconnects.size() / 2]),
      reconnects.empty() ? -1LL : static_cast<long long>(reconnects.back()));
}

}  // namespace
}  // namespace evsse::testing
