// Redis Cluster building blocks of evsse::redis (pubsub/redis/cluster):
// key slots, the slot map, redirections, and PushConn (evsse's own
// connection for sharded pub/sub), against crafted replies and against a
// real six-node cluster started by the test (redis_cluster.h); and the
// cluster link itself in process (routing, bounded redirections).
// End to end with evsse nodes: cluster_link_test.cc.
#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "redis/cluster/push_conn.h"
#include "redis/cluster/slots.h"
#include "redis/link.h"
#include "redis_cluster.h"
#include "redis_fixture.h"
#include "run_loop.h"

namespace evsse::redis::cluster {
namespace {

using ::testing::HasSubstr;
using testing::RedisCluster;
using testing::ReplyPtr;
using testing::RunLoopUntil;

ReplyPtr Parse(const std::string& resp) { return testing::ParseResp(resp); }
std::string Bulk(const std::string& s) { return testing::RespBulk(s); }
std::string Node(const std::string& host, int port) {
  return "*3\r\n" + Bulk(host) + ":" + std::to_string(port) + "\r\n" +
         Bulk("0123456789abcdef");
}
std::string Range(int first, int last, const std::vector<std::string>& nodes) {
  std::string out = "*" + std::to_string(2 + nodes.size()) +
                    "\r\n:" + std::to_string(first) +
                    "\r\n:" + std::to_string(last) + "\r\n";
  for (const std::string& n : nodes) out += n;
  return out;
}

TEST(ClusterSlotsTest, KeySlotIsCrc16OfTheHashTag) {
  // CRC16/XMODEM's check value (Redis Cluster spec): "123456789" → 0x31C3.
  EXPECT_EQ(KeySlot("123456789"), 0x31C3);
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{user1000}.followers"), KeySlot("user1000"));
  // An empty tag hashes the whole key; only the first tag counts.
  EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot(std::string("foo{}{bar}")));
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  // evsse's keys of one topic share its slot.
  EXPECT_EQ(KeySlot("evsse:{orders}:s"), KeySlot("evsse:{orders}:e"));
  EXPECT_EQ(KeySlot("evsse:{orders}:s"), KeySlot("orders"));
}

TEST(ClusterSlotsTest, RedirectionsAreParsedAndMalformedOnesRefused) {
  auto moved = ParseRedirect("MOVED 3999 127.0.0.1:6381", "10.0.0.1");
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->address.host, "127.0.0.1");
  EXPECT_EQ(moved->address.port, 6381);
  EXPECT_EQ(moved->address.text, "127.0.0.1:6381");

  auto ask = ParseRedirect("ASK 0 127.0.0.2:7000", "x");
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->slot, 0);

  // A server that does not know its own host names only the port.
  auto bare = ParseRedirect("MOVED 16383 :7001", "127.0.0.9");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->slot, 16383);
  EXPECT_EQ(bare->address.host, "127.0.0.9");

  auto v6 = ParseRedirect("MOVED 5 ::1:7002", "x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address.host, "::1");
  EXPECT_EQ(v6->address.port, 7002);
  EXPECT_EQ(v6->address.text, "[::1]:7002");

  for (const char* bad :
       {"MOVED", "MOVED 3999", "MOVED 16384 127.0.0.1:1", "MOVED x 1.2.3.4:5",
        "MOVED 1 127.0.0.1", "MOVED 1 127.0.0.1:", "MOVED 1 127.0.0.1:70000",
        "MOVED 1 127.0.0.1:0", "ERR unknown command", "ASKING 1 h:1",
        "MOVED 1 a b:1", "MOVED 123456 h:1"}) {
    EXPECT_FALSE(ParseRedirect(bad, "h")) << bad;
  }
}

TEST(ClusterSlotsTest, SlotMapFromAClusterSlotsReply) {
  std::string resp =
      "*3\r\n" +
      Range(0, 5460, {Node("10.0.0.1", 7000), Node("10.0.0.4", 7003)}) +
      Range(5461, 10922, {Node("", 7001)}) +
      Range(10923, 16383, {Node("?", 7002), Node("10.0.0.6", 7005)});
  ReplyPtr reply = Parse(resp);
  auto map = SlotMap::FromClusterSlots(reply.get(), "10.0.0.9");
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_TRUE(map->complete());
  ASSERT_EQ(map->shards().size(), 3u);
  EXPECT_EQ(map->ShardOf(0)->primary.text, "10.0.0.1:7000");
  ASSERT_EQ(map->ShardOf(5460)->replicas.size(), 1u);
  EXPECT_EQ(map->ShardOf(5460)->replicas[0].text, "10.0.0.4:7003");
  // An empty or "?" host is the host that was asked.
  EXPECT_EQ(map->ShardOf(5461)->primary.text, "10.0.0.9:7001");
  EXPECT_EQ(map->ShardOf(16383)->primary.text, "10.0.0.9:7002");

  // MOVED updates one slot; a primary the map did not know becomes a shard.
  Address fourth = NodeAddress("10.0.0.7", 7006, "");
  map->Moved(42, fourth);
  EXPECT_EQ(map->ShardOf(42)->primary.text, "10.0.0.7:7006");
  EXPECT_EQ(map->ShardOf(41)->primary.text, "10.0.0.1:7000");
  EXPECT_EQ(map->shards().size(), 4u);
}

TEST(ClusterSlotsTest, SlotMapRefusesGapsOverlapsAndGarbage) {
  ReplyPtr partial = Parse("*1\r\n" + Range(0, 100, {Node("h", 1)}));
  auto map = SlotMap::FromClusterSlots(partial.get(), "h");
  ASSERT_TRUE(map.ok());
  EXPECT_FALSE(map->complete());
  EXPECT_EQ(map->ShardOf(101), nullptr);

  ReplyPtr overlap = Parse("*2\r\n" + Range(0, 100, {Node("h", 1)}) +
                           Range(100, 200, {Node("h", 2)}));
  auto refused = SlotMap::FromClusterSlots(overlap.get(), "h");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("overlapping"));

  ReplyPtr range = Parse("*1\r\n" + Range(5, 16384, {Node("h", 1)}));
  EXPECT_FALSE(SlotMap::FromClusterSlots(range.get(), "h").ok());
  ReplyPtr port = Parse("*1\r\n" + Range(0, 1, {Node("h", 0)}));
  EXPECT_FALSE(SlotMap::FromClusterSlots(port.get(), "h").ok());
  ReplyPtr error = Parse("-ERR This instance has cluster support disabled\r\n");
  auto disabled = SlotMap::FromClusterSlots(error.get(), "h");
  ASSERT_FALSE(disabled.ok());
  EXPECT_THAT(disabled.status().message(),
              HasSubstr("cluster support disabled"));
  ReplyPtr flat = Parse(":1\r\n");
  EXPECT_FALSE(SlotMap::FromClusterSlots(flat.get(), "h").ok());
}

TEST(ClusterSlotsTest, PushKindsAreRecognised) {
  EXPECT_TRUE(PushConn::IsPush(
      Parse("*3\r\n" + Bulk("smessage") + Bulk("c") + Bulk("x")).get()));
  EXPECT_TRUE(PushConn::IsPush(
      Parse("*3\r\n" + Bulk("sunsubscribe") + Bulk("c") + ":0\r\n").get()));
  EXPECT_FALSE(
      PushConn::IsPush(Parse("*2\r\n" + Bulk("pong") + Bulk("")).get()));
  EXPECT_FALSE(PushConn::IsPush(Parse("+OK\r\n").get()));
  EXPECT_FALSE(PushConn::IsPush(Parse("*1\r\n" + Bulk("smessage")).get()));
}

// A real cluster: three primaries, three replicas, shared by the tests of
// this suite (a test that disturbs it puts it back).
class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new RedisCluster();
    started_ = cluster_->Start();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(started_);
    ASSERT_TRUE(cluster_->WaitHealthy());
    base_ = event_base_new();
  }
  void TearDown() override {
    conns_.clear();
    if (base_ != nullptr) event_base_free(base_);
  }

  PushConn* Open(const Address& address) {
    auto conn = std::make_unique<PushConn>(
        base_, std::chrono::milliseconds(2000), std::chrono::milliseconds(0),
        [this](const redisReply* push) {
          std::vector<std::string> parts;
          for (size_t i = 0; i < push->elements; ++i) {
            const redisReply* e = push->element[i];
            parts.push_back(e->type == REDIS_REPLY_INTEGER
                                ? std::to_string(e->integer)
                                : std::string(e->str, e->len));
          }
          pushes_.push_back(parts);
        },
        [this](const std::string& error) { failures_.push_back(error); });
    EXPECT_TRUE(conn->Open(address).ok());
    conns_.push_back(std::move(conn));
    return conns_.back().get();
  }

  Result<SlotMap> Map() {
    ReplyPtr reply = cluster_->nodes()[0]->Command({"CLUSTER", "SLOTS"});
    return SlotMap::FromClusterSlots(reply.get(), "127.0.0.1");
  }

  static RedisCluster* cluster_;
  static ::testing::AssertionResult started_;
  event_base* base_ = nullptr;
  std::vector<std::unique_ptr<PushConn>> conns_;
  std::vector<std::vector<std::string>> pushes_;
  std::vector<std::string> failures_;
};

RedisCluster* ClusterTest::cluster_ = nullptr;
::testing::AssertionResult ClusterTest::started_ =
    ::testing::AssertionFailure();

TEST_F(ClusterTest, KeySlotAgreesWithTheServerAndTheMapCoversThreeShards) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string key = "evsse:{t" + std::to_string(rng()) + "}:s";
    if (i % 3 == 0) key = std::to_string(rng()) + "plain";
    ReplyPtr r = cluster_->nodes()[0]->Command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER);
    EXPECT_EQ(KeySlot(key), r->integer) << key;
  }
  auto map = Map();
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_TRUE(map->complete());
  EXPECT_EQ(map->shards().size(), 3u);
  for (const auto& shard : map->shards()) EXPECT_EQ(shard.replicas.size(), 1u);
}

TEST_F(ClusterTest, ShardedSubscriptionCarriesSmessagesOnTheTopicsShard) {
  auto map = Map();
  ASSERT_TRUE(map.ok());
  std::string channel = "evsse:{orders}:c";
  const SlotMap::Shard* shard = map->ShardOf(KeySlot(channel));
  ASSERT_NE(shard, nullptr);
  PushConn* conn = Open(shard->primary);

  int done = 0;
  conn->Subscription("SSUBSCRIBE", {channel},
                     [&](redisReply* reply, const Status& failure) {
                       EXPECT_TRUE(failure.ok());
                       ASSERT_NE(reply, nullptr);
                       EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY);
                       ++done;
                     });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return done == 1; }, std::chrono::seconds(10)));
  ASSERT_EQ(pushes_.size(), 1u);
  EXPECT_EQ(pushes_[0][0], "ssubscribe");

  // SPUBLISH on the shard (from another connection) reaches us as
  // smessage, in order; a command on the same connection still gets its
  // own answer between pushes.
  testing::RedisServer* primary = cluster_->NodeOnPort(shard->primary.port);
  ASSERT_NE(primary, nullptr);
  for (int i = 0; i < 3; ++i) {
    ReplyPtr r =
        primary->Command({"SPUBLISH", channel, "e" + std::to_string(i)});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER);
    EXPECT_EQ(r->integer, 1);
  }
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return pushes_.size() == 4; }, std::chrono::seconds(10)));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pushes_[1 + i],
              (std::vector<std::string>{"smessage", channel,
                                        "e" + std::to_string(i)}));
  }
  EXPECT_TRUE(failures_.empty());
}

TEST_F(ClusterTest, SubscriptionOnTheWrongShardIsRefusedWithMoved) {
  auto map = Map();
  ASSERT_TRUE(map.ok());
  std::string channel = "evsse:{orders}:c";
  uint16_t slot = KeySlot(channel);
  const SlotMap::Shard* right = map->ShardOf(slot);
  const SlotMap::Shard* wrong = nullptr;
  for (const auto& s : map->shards()) {
    if (!SameNode(s.primary, right->primary)) wrong = &s;
  }
  ASSERT_NE(wrong, nullptr);
  PushConn* conn = Open(wrong->primary);
  std::string error;
  bool answered = false;
  conn->Subscription("SSUBSCRIBE", {channel},
                     [&](redisReply* reply, const Status&) {
                       answered = true;
                       ASSERT_NE(reply, nullptr);
                       ASSERT_EQ(reply->type, REDIS_REPLY_ERROR);
                       error.assign(reply->str, reply->len);
                     });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return answered; }, std::chrono::seconds(10)));
  auto redirect = ParseRedirect(error, "127.0.0.1");
  ASSERT_TRUE(redirect) << error;
  EXPECT_FALSE(redirect->ask);
  EXPECT_EQ(redirect->slot, slot);
  EXPECT_TRUE(SameNode(redirect->address, right->primary));
  // The connection stays usable after a refusal.
  bool pong = false;
  conn->Command({"PING"}, [&](redisReply* reply, const Status&) {
    pong = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
  });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return pong; }, std::chrono::seconds(10)));
  EXPECT_TRUE(failures_.empty());
}

TEST_F(ClusterTest, AKilledShardFailsItsConnectionAndPendingRequests) {
  auto map = Map();
  ASSERT_TRUE(map.ok());
  const SlotMap::Shard& shard = map->shards()[0];
  PushConn* conn = Open(shard.primary);
  bool pong = false;
  conn->Command({"PING"}, [&](redisReply* reply, const Status&) {
    pong = reply != nullptr;
  });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return pong; }, std::chrono::seconds(10)));
  testing::RedisServer* primary = cluster_->NodeOnPort(shard.primary.port);
  ASSERT_NE(primary, nullptr);
  primary->Pause();  // a hung server: only the command timeout can tell
  Status failed;
  bool answered = false;
  conn->Command({"PING"}, [&](redisReply* reply, const Status& failure) {
    answered = true;
    EXPECT_EQ(reply, nullptr);
    failed = failure;
  });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return !failures_.empty(); }, std::chrono::seconds(10)));
  EXPECT_TRUE(answered);
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_THAT(failures_[0], HasSubstr("timed out after 2000 ms"));
  EXPECT_FALSE(conn->open());
  primary->Resume();
}

// RecordingSink: what a cluster link tells its Hub.
class RecordingSink : public BackendSink {
 public:
  void Deliver(const std::string& topic, uint64_t epoch,
               const StoredEvent& event) override {
    delivered.push_back(topic + " " + event.data);
    last[topic] = {epoch, event.position};
  }
  void Synced(const std::string& topic, uint64_t epoch,
              pubsub::Position from) override {
    synced.push_back(topic);
    if (last[topic].first != epoch || last[topic].second < from) {
      last[topic] = {epoch, from};
    }
  }
  pubsub::Position LastPosition(const std::string& topic,
                                uint64_t* epoch) override {
    *epoch = last[topic].first;
    return last[topic].second;
  }
  void Continued(const std::string& topic, uint64_t old_epoch, uint64_t epoch,
                 pubsub::Position end) override {
    auto& [e, p] = last[topic];
    if (e == old_epoch) {
      e = epoch;
      p = std::min(p, end);
    }
  }
  void Restarted(const std::string& topic, uint64_t,
                 pubsub::Position) override {
    ADD_FAILURE() << "Restarted(" << topic << ") from the cluster link";
  }
  void ExpansionChanged(const std::string& topic) override {
    ADD_FAILURE() << "ExpansionChanged(" << topic << ") from the cluster link";
  }
  void LinkChanged(bool is_up) override { up = is_up; }

  bool up = false;
  std::vector<std::string> delivered;
  std::vector<std::string> synced;
  std::map<std::string, std::pair<uint64_t, pubsub::Position>> last;
};

// The cluster link in process: a topic on each shard is published to and
// delivered; a slot stuck MIGRATING (every publish answered TRYAGAIN or
// ASK) ends in kUnavailable after the bounded redirections, and works again
// once the slot is STABLE.
TEST_F(ClusterTest, ClusterLinkRoutesByShardAndBoundsRedirections) {
  auto map = Map();
  ASSERT_TRUE(map.ok());
  // One topic per shard.
  std::vector<std::string> topics;
  std::set<std::string> shards;
  for (int i = 0; topics.size() < 3 && i < 1000; ++i) {
    std::string t = "r" + std::to_string(i);
    if (shards
            .insert(map->ShardOf(KeySlot("evsse:{" + t + "}:s"))->primary.text)
            .second)
      topics.push_back(t);
  }
  ASSERT_EQ(topics.size(), 3u);
  LinkEnv env;
  env.base = base_;
  RedisOptions options;
  options.cluster_seeds = {
      "127.0.0.1:1",  // a dead seed is skipped
      "127.0.0.1:" + std::to_string(cluster_->nodes()[3]->port())};
  auto made = MakeLink(env, options);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::unique_ptr<BackendLink> link = std::move(made).value();
  RecordingSink sink;
  link->Start(&sink);
  for (const std::string& t : topics) link->Watch(t);
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return sink.up && sink.synced.size() == 3; },
      std::chrono::seconds(10)));
  std::string primaries = link->stats().primary;
  EXPECT_EQ(std::count(primaries.begin(), primaries.end(), ','), 2)
      << primaries;
  int answered = 0;
  for (const std::string& t : topics) {
    link->Publish(t, "", "hello " + t,
                  [&](Status s, uint64_t, pubsub::Position) {
                    EXPECT_TRUE(s.ok()) << s.ToString();
                    ++answered;
                  });
  }
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return answered == 3 && sink.delivered.size() == 3; },
      std::chrono::seconds(10)));
  // Each topic's channel is followed on its own shard only, sharded.
  for (const std::string& t : topics) {
    std::string channel = "evsse:{" + t + "}:c";
    testing::RedisServer* p =
        cluster_->NodeOnPort(map->ShardOf(KeySlot(channel))->primary.port);
    ASSERT_NE(p, nullptr);
    ReplyPtr n = p->Command({"PUBSUB", "SHARDNUMSUB", channel});
    ASSERT_TRUE(n && n->type == REDIS_REPLY_ARRAY && n->elements == 2);
    EXPECT_EQ(n->element[1]->integer, 1) << t;
  }

  // The first topic's slot stays MIGRATING to another primary.
  uint16_t slot = KeySlot("evsse:{" + topics[0] + "}:s");
  testing::RedisServer* from =
      cluster_->NodeOnPort(map->ShardOf(slot)->primary.port);
  testing::RedisServer* to = cluster_->NodeOnPort(
      map->ShardOf(KeySlot("evsse:{" + topics[1] + "}:s"))->primary.port);
  ReplyPtr to_id = to->Command({"CLUSTER", "MYID"});
  ASSERT_TRUE(to_id && to_id->type == REDIS_REPLY_STRING);
  std::string id(to_id->str, to_id->len);
  ReplyPtr r = from->Command(
      {"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", id});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  Status refused;
  bool done = false;
  auto started = std::chrono::steady_clock::now();
  link->Publish(topics[0], "", "stuck",
                [&](Status s, uint64_t, pubsub::Position) {
                  refused = s;
                  done = true;
                });
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return done; }, std::chrono::seconds(10)));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_THAT(refused.message(), HasSubstr("redirections"));
  // It was retried for a while (doubling from 25 ms), not refused at once.
  EXPECT_GE(std::chrono::steady_clock::now() - started,
            std::chrono::milliseconds(500));
  r = from->Command({"CLUSTER", "SETSLOT", std::to_string(slot), "STABLE"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  done = false;
  link->Publish(topics[0], "", "unstuck",
                [&](Status s, uint64_t, pubsub::Position) {
                  EXPECT_TRUE(s.ok()) << s.ToString();
                  done = true;
                });
  ASSERT_TRUE(RunLoopUntil(
      base_,
      [&] { return done && sink.delivered.back() == topics[0] + " unstuck"; },
      std::chrono::seconds(10)));
  EXPECT_EQ(sink.delivered.size(), 4u);
  link.reset();
}

// A planned failover (CLUSTER FAILOVER on a replica) while a topic is
// published to and followed: the demoted primary answers MOVED (followed to
// the new primary, whose engine the publish waits for) and drops the
// topic's sharded subscription (re-homed and back-filled): every publish
// succeeds, every event is delivered once, in order. The suite's cluster
// is then failed back.
TEST_F(ClusterTest, ClusterLinkFollowsAPlannedFailover) {
  std::string topic = "planned";
  uint16_t slot = KeySlot("evsse:{" + topic + "}:s");
  auto map = Map();
  ASSERT_TRUE(map.ok());
  const SlotMap::Shard* shard = map->ShardOf(slot);
  ASSERT_NE(shard, nullptr);
  ASSERT_EQ(shard->replicas.size(), 1u);
  testing::RedisServer* old_primary = cluster_->NodeOnPort(shard->primary.port);
  testing::RedisServer* replica = cluster_->NodeOnPort(shard->replicas[0].port);
  ASSERT_NE(old_primary, nullptr);
  ASSERT_NE(replica, nullptr);

  LinkEnv env;
  env.base = base_;
  RedisOptions options;
  options.cluster_seeds = {"127.0.0.1:" +
                           std::to_string(cluster_->nodes()[0]->port())};
  auto made = MakeLink(env, options);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::unique_ptr<BackendLink> link = std::move(made).value();
  RecordingSink sink;
  link->Start(&sink);
  link->Watch(topic);
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return sink.up && sink.synced.size() == 1; },
      std::chrono::seconds(10)));

  // One publish at a time, each answered before the next.
  int issued = 0, answered = 0, ok = 0;
  bool stop = false;
  std::vector<std::string> errors;
  std::function<void()> next = [&] {
    int n = issued++;
    link->Publish(topic, "", std::to_string(n),
                  [&](Status s, uint64_t, pubsub::Position) {
                    ++answered;
                    if (s.ok()) {
                      ++ok;
                    } else {
                      errors.push_back(s.ToString());
                    }
                    if (!stop && link != nullptr) next();
                  });
  };
  next();
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return ok >= 50; }, std::chrono::seconds(10)));
  ReplyPtr r = replica->Command({"CLUSTER", "FAILOVER"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return cluster_->PrimaryOf(slot) == replica; },
      std::chrono::seconds(20)));
  int at_switch = ok;
  ASSERT_TRUE(RunLoopUntil(
      base_, [&] { return ok >= at_switch + 100; }, std::chrono::seconds(20)));
  stop = true;  // after the one in flight
  ASSERT_TRUE(RunLoopUntil(
      base_,
      [&] {
        return answered == issued &&
               static_cast<int>(sink.delivered.size()) == ok;
      },
      std::chrono::seconds(10)))
      << "delivered " << sink.delivered.size() << " of " << ok;
  ASSERT_TRUE(errors.empty())
      << errors.size() << " failed, first: " << errors.front();
  for (int i = 0; i < ok; ++i) {
    ASSERT_EQ(sink.delivered[i], topic + " " + std::to_string(i));
  }
  EXPECT_GE(link->stats().failovers, 1u);
  link.reset();

  // Back as it was for the other tests, once the demoted primary is a
  // replica in sync (a manual failover gives up after 5 s otherwise).
  auto synced_replica = [](testing::RedisServer* node) {
    ReplyPtr role = node->Command({"ROLE"});
    return role && role->type == REDIS_REPLY_ARRAY && role->elements >= 4 &&
           std::string(role->element[0]->str) == "slave" &&
           std::string(role->element[3]->str) == "connected";
  };
  bool back = false;
  for (int attempt = 0; attempt < 3 && !back; ++attempt) {
    ASSERT_TRUE(RunLoopUntil(
        base_, [&] { return synced_replica(old_primary); },
        std::chrono::seconds(20)));
    r = old_primary->Command({"CLUSTER", "FAILOVER"});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
    back = RunLoopUntil(
        base_, [&] { return cluster_->PrimaryOf(slot) == old_primary; },
        std::chrono::seconds(8));
  }
  EXPECT_TRUE(back) << "the suite's cluster could not be failed back";
}

}  // namespace
}  // namespace evsse::redis::cluster
