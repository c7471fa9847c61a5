// The alert server in Redis mode: real evsse-alerts processes on one private
// redis-server (tests/support/redis_fixture.h), driven over loopback. A node
// that publishes reaches subscribers on the other; a client resumes on any
// node, also on a restarted one; /metrics follows the Redis link; publishing
// while Redis is down answers 503 with a JSON error and recovers by itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "alerts_process.h"
#include "redis_cluster.h"
#include "redis_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// RedisConf: a node on a free port (or `listen`) with a fast reconnect, so
// an outage ends soon after redis-server is back.
std::string RedisConf(const std::string& redis_address) {
  return "shutdown_timeout 1s;\n"
         "server {\n"
         "  listen 127.0.0.1:0;\n"
         "  publish_token " +
         std::string(kAlertsToken) +
         ";\n"
         "  endpoint subscribe /alerts/stream { heartbeat 15s; }\n"
         "  endpoint metrics /metrics { }\n"
         "  endpoint status /status { }\n"
         "  redis {\n"
         "    address " +
         redis_address +
         ";\n"
         "    reconnect_min 50ms;\n"
         "    reconnect_max 300ms;\n"
         "  }\n"
         "}\n";
}

class AlertsRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kAlertsBin[0] == '\0')
      GTEST_SKIP() << "evsse-alerts is not built in this configuration "
                      "(EVSSE_BUILD_EXAMPLES=OFF); the plain build runs this "
                      "test";
    std::signal(SIGPIPE, SIG_IGN);
    ASSERT_TRUE(redis_.Start());
  }

  // StartNode starts a node, on `port` when it is not 0, with `extra`
  // flags, and waits until its Redis link is up.
  AlertsServer* StartNode(int port = 0, std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = std::move(extra);
    if (port != 0) {
      flags.insert(flags.end(),
                   {"--listen", "127.0.0.1:" + std::to_string(port)});
    }
    nodes_.push_back(std::make_unique<AlertsServer>(
        RedisConf(redis_.address()), std::vector<std::string>{}, flags));
    AlertsServer* node = nodes_.back().get();
    if (!node->Started()) return node;
    EXPECT_TRUE(
        WaitUntil([&] { return RedisUp(*node) == 1; }, milliseconds(10000)))
        << node->Log();
    return node;
  }

  static double Metric(const AlertsServer& node, const std::string& name) {
    auto m = ParseMetrics(CallServer(node.port(), "GET", "/metrics").body);
    auto it = m.find(name);
    return it == m.end() ? -1 : it->second;
  }
  static double RedisUp(const AlertsServer& node) {
    return Metric(node, "evsse_redis_up");
  }

  // Publish posts an alert titled `title` and returns its id.
  static std::string Publish(const AlertsServer& node, const std::string& team,
                             const std::string& title) {
    Response r = PostAlertTo(node.port(), AlertJson("warning", team, title));
    EXPECT_EQ(r.status, 200) << r.body;
    Json j = r.json();
    return j.is_object() && j.contains("id") ? j["id"].get<std::string>() : "";
  }

  static std::string TitleOf(const StreamParser::Event& e) {
    Json j = Json::parse(e.data, nullptr, false);
    return j.is_object() ? j.value("title", "") : "";
  }

  // Alerts: the events of a stream that are not probes.
  static std::vector<StreamParser::Event> Alerts(const TestClient& c) {
    std::vector<StreamParser::Event> out;
    for (const auto& e : c.events)
      if (TitleOf(e).rfind("probe-", 0) != 0) out.push_back(e);
    return out;
  }
  static std::vector<std::string> AlertIds(const TestClient& c) {
    std::vector<std::string> ids;
    for (const auto& e : Alerts(c)) ids.push_back(e.last_event_id);
    return ids;
  }

  // PublishThree publishes three alerts of team "ops" on `from` ("disk
  // full", "cpu hot", "disk ok"; `ids` gets the ids they were given) and
  // waits until `sub` (live, of topic ops) has exactly them, in order.
  ::testing::AssertionResult PublishThree(const AlertsServer& from,
                                          TestClient& sub,
                                          std::vector<std::string>* ids) {
    for (const char* title : {"disk full", "cpu hot", "disk ok"})
      ids->push_back(Publish(from, "ops", title));
    if (!PollClients({&sub}, [&] { return Alerts(sub).size() == 3; }))
      return ::testing::AssertionFailure()
             << Alerts(sub).size() << " of the 3 alerts arrived";
    if (AlertIds(sub) != *ids)
      return ::testing::AssertionFailure()
             << "received " << ::testing::PrintToString(AlertIds(sub))
             << ", published " << ::testing::PrintToString(*ids);
    return ::testing::AssertionSuccess();
  }

  // WaitLive publishes probe alerts on `node` until every client got the
  // latest: a fresh subscription is live once the node's Redis watch of
  // the team is synced, which the 200 answer does not wait for.
  bool WaitLive(const std::vector<TestClient*>& clients,
                const AlertsServer& node, const std::string& team) {
    for (int i = 0; i < 50; ++i) {
      std::string title = "probe-" + std::to_string(++probes_);
      Publish(node, team, title);
      if (PollClients(
              clients,
              [&] {
                for (TestClient* c : clients)
                  if (c->events.empty() || TitleOf(c->events.back()) != title)
                    return false;
                return true;
              },
              milliseconds(200)))
        return true;
    }
    return false;
  }

  RedisServer redis_;
  int probes_ = 0;  // probe titles are unique within a test
  std::vector<std::unique_ptr<AlertsServer>> nodes_;
};

TEST_F(AlertsRedisTest, PublishOnOneNodeReachesSubscribersOnTheOther) {
  AlertsServer* a = StartNode();
  AlertsServer* b = StartNode();
  ASSERT_FALSE(HasFailure());
  auto on_b = OpenStream(b->port(), "topic=ops");
  ASSERT_TRUE(WaitLive({on_b.get()}, *a, "ops"));

  std::vector<std::string> ids;
  ASSERT_TRUE(PublishThree(*a, *on_b, &ids));
  EXPECT_EQ(TitleOf(Alerts(*on_b)[1]), "cpu hot");
  EXPECT_EQ(Alerts(*on_b)[1].type, "warning");
  // The id is the Redis stream's: "<epoch>.<ms>[-<seq>]".
  EXPECT_THAT(ids[0], ::testing::MatchesRegex("[0-9a-z]+\\.[0-9]+(-[0-9]+)?"));
  // Each node counts the alerts it published (three and the probes) and
  // the events it delivered.
  const std::string warning =
      "evsse_alerts_published_total{severity=\"warning\"}";
  EXPECT_GE(Metric(*a, warning), 4);
  EXPECT_EQ(Metric(*b, warning), 0);
  EXPECT_GE(Metric(*b, "evsse_events_delivered_total"), 3);
}

// --redis-cluster: the nodes use a Redis Cluster instead of the file's
// address; alerts published on one reach the other, and /metrics and
// /status show the link up.
TEST_F(AlertsRedisTest, ClusterFlagFansOutAcrossNodes) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start());
  auto seed = [&](int i) {
    return "127.0.0.1:" + std::to_string(cluster.nodes()[i]->port());
  };
  AlertsServer* a = StartNode(0, {"--redis-cluster", seed(0)});
  AlertsServer* b = StartNode(0, {"--redis-cluster", seed(1) + "," + seed(2)});
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(a->Log(), HasSubstr("redis=\"cluster " + seed(0)));
  auto on_b = OpenStream(b->port(), "topic=ops");
  ASSERT_TRUE(WaitLive({on_b.get()}, *a, "ops"));
  std::vector<std::string> ids;
  ASSERT_TRUE(PublishThree(*a, *on_b, &ids));
  EXPECT_EQ(RedisUp(*a), 1);
  Json status = CallServer(b->port(), "GET", "/status").json();
  EXPECT_EQ(status["redis"]["up"], true);
  // The link has an engine per primary: the three are listed.
  std::string primaries = status["redis"].value("primary", "");
  EXPECT_EQ(std::count(primaries.begin(), primaries.end(), ','), 2)
      << status.dump();
  // The file's single address is not used: that Redis has no stream.
  ReplyPtr keys = redis_.Command({"DBSIZE"});
  ASSERT_TRUE(keys && keys->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(keys->integer, 0);
}

TEST_F(AlertsRedisTest, ResumeOnAnotherNodeFromAnIdReceivedOnTheFirst) {
  AlertsServer* a = StartNode();
  AlertsServer* b = StartNode();
  ASSERT_FALSE(HasFailure());
  auto on_a = OpenStream(a->port(), "topic=web");
  ASSERT_TRUE(WaitLive({on_a.get()}, *a, "web"));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(Publish(*a, "web", "first " + std::to_string(i)));
  ASSERT_TRUE(
      PollClients({on_a.get()}, [&] { return Alerts(*on_a).size() == 3; }));
  const std::string cursor = on_a->last_event_id();
  EXPECT_EQ(cursor, ids.back());
  on_a.reset();  // the client goes away ...
  for (int i = 0; i < 2; ++i)
    ids.push_back(Publish(*a, "web", "missed " + std::to_string(i)));

  // ... and comes back on B with the id it had from A.
  auto on_b =
      OpenStream(b->port(), "topic=web", "Last-Event-ID: " + cursor + "\r\n");
  ASSERT_TRUE(
      PollClients({on_b.get()}, [&] { return Alerts(*on_b).size() == 2; }));
  ids.push_back(Publish(*b, "web", "live"));
  ASSERT_TRUE(
      PollClients({on_b.get()}, [&] { return Alerts(*on_b).size() == 3; }));
  PollClients(
      {on_b.get()}, [] { return false; }, milliseconds(50));
  EXPECT_EQ(AlertIds(*on_b),
            std::vector<std::string>(ids.begin() + 3, ids.end()));
  for (const auto& e : on_b->events) EXPECT_NE(e.type, "gap");
  EXPECT_GE(Metric(*b, "evsse_replays_total"), 1);
}

TEST_F(AlertsRedisTest, ARestartedNodeResumesFromAnOldId) {
  const int port_a = FreeTcpPort();
  AlertsServer* a = StartNode(port_a);
  AlertsServer* b = StartNode();
  ASSERT_FALSE(HasFailure());
  auto before = OpenStream(port_a, "topic=db");
  ASSERT_TRUE(WaitLive({before.get()}, *a, "db"));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(Publish(*a, "db", "before " + std::to_string(i)));
  ASSERT_TRUE(
      PollClients({before.get()}, [&] { return Alerts(*before).size() == 3; }));
  const std::string cursor = before->last_event_id();

  a->Signal(SIGKILL);  // a crash: no drain
  ASSERT_TRUE(PollClients({before.get()}, [&] { return before->closed(); }));
  for (int i = 0; i < 3; ++i)
    ids.push_back(Publish(*b, "db", "while down " + std::to_string(i)));

  AlertsServer* again = StartNode(port_a);  // a new process, same port
  ASSERT_FALSE(HasFailure());
  auto resumed =
      OpenStream(port_a, "topic=db", "Last-Event-ID: " + cursor + "\r\n");
  ASSERT_TRUE(PollClients({resumed.get()},
                          [&] { return Alerts(*resumed).size() == 3; }));
  ids.push_back(Publish(*again, "db", "after"));
  ASSERT_TRUE(PollClients({resumed.get()},
                          [&] { return Alerts(*resumed).size() == 4; }));
  PollClients(
      {resumed.get()}, [] { return false; }, milliseconds(50));
  EXPECT_EQ(AlertIds(*resumed),
            std::vector<std::string>(ids.begin() + 3, ids.end()));
  EXPECT_EQ(TitleOf(Alerts(*resumed)[0]), "while down 0");
  for (const auto& e : resumed->events) EXPECT_NE(e.type, "gap");
}

TEST_F(AlertsRedisTest, RedisDownShowsInMetricsAndPublishesGet503) {
  AlertsServer* a = StartNode();
  ASSERT_FALSE(HasFailure());
  auto sub = OpenStream(a->port(), "topic=ops");
  ASSERT_TRUE(WaitLive({sub.get()}, *a, "ops"));
  EXPECT_EQ(RedisUp(*a), 1);

  redis_.Stop();
  ASSERT_TRUE(WaitUntil([&] { return RedisUp(*a) == 0; }, milliseconds(10000)));
  Response r = PostAlertTo(a->port(), AlertJson("critical", "ops"));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_THAT(r.headers["Content-Type"], HasSubstr("application/json"));
  EXPECT_THAT(r.error(), HasSubstr("not published: redis link down"));
  Json status = CallServer(a->port(), "GET", "/status").json();
  EXPECT_EQ(status["redis"]["connected"], false);
  EXPECT_EQ(status["redis"]["up"], false);
  EXPECT_FALSE(status["redis"]["last_error"].get<std::string>().empty());
  EXPECT_GE(Metric(*a, "evsse_alerts_rejected_total{code=\"503\"}"), 1);
  // The subscriber stays connected through the outage.
  PollClients(
      {sub.get()}, [] { return false; }, milliseconds(50));
  EXPECT_FALSE(sub->closed());

  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(WaitUntil([&] { return RedisUp(*a) == 1; }, milliseconds(10000)));
  EXPECT_GE(Metric(*a, "evsse_redis_reconnects_total"), 1);
  // The link's delivery state: probes answered, their round trip shown.
  ASSERT_TRUE(
      WaitUntil([&] { return Metric(*a, "evsse_redis_probes_total") >= 2; },
                milliseconds(10000)));
  EXPECT_GT(Metric(*a, "evsse_redis_delivery_lag_seconds"), 0);
  Json live = CallServer(a->port(), "GET", "/status").json();
  EXPECT_EQ(live["redis"]["up"], true);
  EXPECT_GT(live["redis"]["delivery_lag_seconds"].get<double>(), 0);
  EXPECT_GE(live["redis"]["last_probe_age_seconds"].get<double>(), 0);
  EXPECT_EQ(live["config"]["redis"]["probe_interval_ms"], 1000);

  // Redis came back empty (nothing persisted): the team's stream starts a
  // new history. The node ends the subscription rather than going on as if
  // nothing was lost ...
  std::string after = Publish(*a, "ops", "after the outage");
  ASSERT_FALSE(after.empty());
  ASSERT_TRUE(PollClients({sub.get()},
                          [&] { return sub->closed() || sub->chunked_end(); }))
      << "the subscriber went on; its last event: "
      << (sub->events.empty() ? "none" : sub->events.back().data);
  for (const auto& e : sub->events) EXPECT_NE(TitleOf(e), "after the outage");
  // ... and the client, back with its last id, is told about the gap, then
  // goes on live.
  auto back = OpenStream(a->port(), "topic=ops",
                         "Last-Event-ID: " + sub->last_event_id() + "\r\n");
  ASSERT_TRUE(PollClients({back.get()}, [&] { return !back->events.empty(); }));
  EXPECT_EQ(back->events[0].type, "gap");
  EXPECT_EQ(back->events[0].data, R"({"topics":["ops"],"reason":"unknown"})");
  ASSERT_TRUE(WaitLive({back.get()}, *a, "ops"));
  std::string next = Publish(*a, "ops", "next");
  ASSERT_TRUE(PollClients(
      {back.get()}, [&] { return back->events.back().last_event_id == next; }));
  EXPECT_EQ(TitleOf(back->events.back()), "next");
}

}  // namespace
}  // namespace evsse::testing
