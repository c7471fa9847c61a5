// evsse::redis against real redis-servers (one per test, see
// redis_fixture.h), driven through a fake BackendSink on the test thread's
// event_base.
#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/hub.h"
#include "evsse/pubsub/address.h"
#include "evsse/redis.h"
#include "redis/link.h"
#include "redis/reply.h"
#include "redis/scripts.h"
#include "redis_fixture.h"
#include "run_loop.h"

namespace evsse::redis {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using pubsub::Position;
using testing::RedisServer;
using testing::ReplyPtr;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr Position kEnd{kMax, kMax};

// FakeSink records what a link reports and answers LastPosition the way the
// Hub does: the newest position delivered, or the position synced at.
class FakeSink : public BackendSink {
 public:
  struct Delivered {
    std::string topic;
    uint64_t epoch;
    StoredEvent event;
  };
  struct SyncedCall {
    std::string topic;
    uint64_t epoch;
    Position from;
    size_t delivered_before;  // deliveries recorded before this call
  };

  void Deliver(const std::string& topic, uint64_t epoch,
               const StoredEvent& event) override {
    delivered.push_back({topic, epoch, event});
    auto& [e, p] = last[topic];
    if (e != epoch || event.position > p) {
      e = epoch;
      p = event.position;
    }
  }
  void Synced(const std::string& topic, uint64_t epoch,
              Position from) override {
    synced.push_back({topic, epoch, from, delivered.size()});
    auto& [e, p] = last[topic];
    if (e != epoch) {
      e = epoch;
      p = from;
    } else if (from > p) {
      p = from;
    }
  }
  void Continued(const std::string& topic, uint64_t old_epoch, uint64_t epoch,
                 Position end) override {
    continued.push_back({topic, old_epoch, epoch, end});
    auto& [e, p] = last[topic];
    if (e == old_epoch) {
      e = epoch;
      p = std::min(p, end);
    }
  }
  Position LastPosition(const std::string& topic, uint64_t* epoch) override {
    auto it = last.find(topic);
    if (it == last.end()) {
      *epoch = 0;
      return {};
    }
    *epoch = it->second.first;
    return it->second.second;
  }
  void LinkChanged(bool up) override { changes.push_back(up); }
  // The Redis link never reports these (a recreated stream is a new epoch;
  // a topic is one stream).
  void Restarted(const std::string& topic, uint64_t, Position) override {
    ADD_FAILURE() << "Restarted(" << topic << ") from the Redis link";
  }
  void ExpansionChanged(const std::string& topic) override {
    ADD_FAILURE() << "ExpansionChanged(" << topic << ") from the Redis link";
  }

  bool up() const { return !changes.empty() && changes.back(); }
  bool down() const { return !changes.empty() && !changes.back(); }
  size_t synced_count(const std::string& topic) const {
    size_t n = 0;
    for (const auto& s : synced) n += s.topic == topic;
    return n;
  }

  std::vector<Delivered> delivered;
  std::vector<SyncedCall> synced;
  struct ContinuedCall {
    std::string topic;
    uint64_t old_epoch;
    uint64_t epoch;
    Position end;
  };
  std::vector<ContinuedCall> continued;
  std::vector<bool> changes;
  std::map<std::string, std::pair<uint64_t, Position>> last;
};

struct PublishOutcome {
  int calls = 0;
  Status status;
  uint64_t epoch = 0;
  Position position;
};

struct FetchOutcome {
  int calls = 0;
  Status status;
  Backend::FetchResult result;
};

class RedisLinkTest : public ::testing::Test {
 protected:
  RedisLinkTest()
      : base_(event_base_new()),
        tick_(event_new(
            base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {},
            nullptr)) {
    // A steady tick makes every EVLOOP_ONCE return within 5 ms.
    timeval tv{0, 5000};
    event_add(tick_, &tv);
  }
  ~RedisLinkTest() override {
    event_free(tick_);
    event_base_free(base_);
  }

  void SetUp() override { ASSERT_TRUE(redis_.Start()); }

  RedisOptions Options() const {
    RedisOptions o;
    o.address = redis_.address();
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.command_timeout = std::chrono::milliseconds(3000);
    o.reconnect_min = std::chrono::milliseconds(20);
    o.reconnect_max = std::chrono::milliseconds(200);
    return o;
  }

  std::unique_ptr<BackendLink> NewLink(
      FakeSink* sink, RedisOptions options,
      std::vector<std::string>* log = nullptr) {
    LinkEnv env;
    env.base = base_;
    if (log != nullptr) {
      env.log = [log](std::string_view line) { log->emplace_back(line); };
    }
    auto made = MakeLink(std::move(env), std::move(options));
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return nullptr;
    std::unique_ptr<BackendLink> link = std::move(made).value();
    link->Start(sink);
    return link;
  }

  // RunUntil runs the loop until `done` holds or `timeout` passes.
  bool RunUntil(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return testing::RunLoopUntil(base_, done, timeout);
  }
  void RunFor(std::chrono::milliseconds d) { testing::RunLoopFor(base_, d); }

  // Publish returns at once; `out` fills when the callback fires.
  void PublishAsync(Backend* link, const std::string& topic,
                    const std::string& type, const std::string& data,
                    PublishOutcome* out) {
    link->Publish(topic, type, data,
                  [out](Status s, uint64_t epoch, Position pos) {
                    ++out->calls;
                    out->status = std::move(s);
                    out->epoch = epoch;
                    out->position = pos;
                  });
  }
  PublishOutcome Publish(Backend* link, const std::string& topic,
                         const std::string& type, const std::string& data) {
    PublishOutcome out;
    PublishAsync(link, topic, type, data, &out);
    EXPECT_TRUE(RunUntil([&] { return out.calls > 0; }));
    EXPECT_EQ(out.calls, 1);
    return out;
  }
  std::vector<PublishOutcome> PublishMany(Backend* link,
                                          const std::string& topic, int n) {
    std::vector<PublishOutcome> out(n);
    for (int i = 0; i < n; ++i) {
      PublishAsync(link, topic, "n", std::to_string(i), &out[i]);
    }
    EXPECT_TRUE(RunUntil([&] {
      for (const auto& o : out)
        if (o.calls == 0) return false;
      return true;
    }));
    for (const auto& o : out) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    return out;
  }
  void FetchAsync(Backend* link, const std::string& topic, Position after,
                  Position until, size_t limit, FetchOutcome* out) {
    link->Fetch(topic, after, until, limit,
                [out](Result<Backend::FetchResult> r) {
                  ++out->calls;
                  out->status = r.status();
                  if (r.ok()) out->result = std::move(r).value();
                });
  }
  FetchOutcome Fetch(Backend* link, const std::string& topic, Position after,
                     Position until, size_t limit) {
    FetchOutcome out;
    FetchAsync(link, topic, after, until, limit, &out);
    EXPECT_TRUE(RunUntil([&] { return out.calls > 0; }));
    EXPECT_EQ(out.calls, 1);
    return out;
  }

  int64_t XLen(const std::string& key) {
    ReplyPtr r = redis_.Command({"XLEN", key});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  }

  event_base* base_;
  event* tick_;
  RedisServer redis_;
};

std::string Str(const redisReply* r) { return std::string(r->str, r->len); }

// ---- Options and addresses (no server needed) ------------------------------

TEST(RedisAddressTest, AcceptsHostPortAndUnixSockets) {
  for (const char* a : {"127.0.0.1:6379", "localhost:1", "[::1]:6379",
                        "redis-1.internal:65535", "unix:/tmp/redis.sock"}) {
    EXPECT_TRUE(ValidateAddress(a).ok())
        << a << ": " << ValidateAddress(a).ToString();
  }
}

TEST(RedisAddressTest, NamesTheProblem) {
  struct Case {
    const char* address;
    const char* message;
  };
  const Case cases[] = {
      {"", "empty"},
      {"127.0.0.1", "no port"},
      {"127.0.0.1:", "empty port"},
      {":6379", "no host"},
      {"127.0.0.1:0", "out of range"},
      {"127.0.0.1:65536", "out of range"},
      {"127.0.0.1:99999999999999999999", "out of range"},
      {"127.0.0.1:63a", "not a number"},
      {"my host:6379", "bad character ' '"},
      {"host/x:6379", "bad character '/'"},
      {"unix:", "no socket path"},
      {"::1:6379", "brackets"},
      {"[::1]6379", "no port"},
      {"[::1", "no ']'"},
      {"unix:relative.sock", "absolute path"},
  };
  for (const Case& c : cases) {
    Status s = ValidateAddress(c.address);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.address;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.address;
    EXPECT_THAT(s.message(), HasSubstr(std::string("\"") + c.address + "\""));
  }
  EXPECT_THAT(ValidateAddress("unix:/" + std::string(200, 'x')).message(),
              HasSubstr("longer than"));
}

TEST(RedisAddressTest, SentinelSpecs) {
  auto spec = pubsub::ParseSentinelSpec("mymaster@10.0.0.1:26379,[::1]:26380");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->master, "mymaster");
  EXPECT_THAT(spec->sentinels,
              ::testing::ElementsAre("10.0.0.1:26379", "[::1]:26380"));
  struct Case {
    const char* spec;
    const char* message;
  };
  const Case cases[] = {
      {"10.0.0.1:26379", "no '@'"},
      {"@10.0.0.1:26379", "empty master name"},
      {"m@", "no sentinel"},
      {"m@10.0.0.1", "no port"},
      {"m@unix:/s.sock", "not unix sockets"},
      {"m@1.2.3.4:5,1.2.3.4:5", "listed twice"},
      {"m@1.2.3.4:5,", "empty"},
      {"my m@1.2.3.4:5", "spaces"},
  };
  for (const Case& c : cases) {
    auto r = pubsub::ParseSentinelSpec(c.spec);
    EXPECT_FALSE(r.ok()) << c.spec;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.spec;
  }
}

TEST(RedisAddressTest, ClusterSeeds) {
  auto seeds = pubsub::ParseClusterSeeds("10.0.0.1:7000,[::1]:7001,node:7002");
  ASSERT_TRUE(seeds.ok()) << seeds.status().ToString();
  EXPECT_THAT(*seeds, ::testing::ElementsAre("10.0.0.1:7000", "[::1]:7001",
                                             "node:7002"));
  struct Case {
    const char* seeds;
    const char* message;
  };
  const Case cases[] = {
      {"", "empty"},
      {"10.0.0.1", "no port"},
      {"unix:/s.sock", "not unix sockets"},
      {"1.2.3.4:5,1.2.3.4:5", "listed twice"},
      {"1.2.3.4:5,", "empty"},
  };
  for (const Case& c : cases) {
    auto r = pubsub::ParseClusterSeeds(c.seeds);
    EXPECT_FALSE(r.ok()) << c.seeds;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.seeds;
  }
}

TEST(RedisLinkOptionsTest, RejectsBadOptions) {
  event_base* base = event_base_new();
  auto error = [base](RedisOptions o) {
    LinkEnv env;
    env.base = base;
    auto made = MakeLink(std::move(env), std::move(o));
    EXPECT_FALSE(made.ok());
    return made.ok() ? std::string() : made.status().message();
  };
  RedisOptions o;
  o.address = "127.0.0.1";
  EXPECT_THAT(error(o), HasSubstr("no port"));
  o = {};
  o.username = "u";
  EXPECT_THAT(error(o), HasSubstr("username needs a password"));
  o = {};
  o.reconnect_min = std::chrono::milliseconds(500);
  o.reconnect_max = std::chrono::milliseconds(100);
  EXPECT_THAT(error(o), HasSubstr("reconnect_min"));
  o = {};
  o.command_timeout = std::chrono::milliseconds(0);
  EXPECT_THAT(error(o), HasSubstr("command_timeout"));
  o = {};
  o.database = -1;
  EXPECT_THAT(error(o), HasSubstr("negative"));
  o = {};
  o.probe_interval = std::chrono::milliseconds(-1);
  EXPECT_THAT(error(o), HasSubstr("probe_interval"));
  o = {};
  o.probe_timeout = std::chrono::milliseconds(0);
  EXPECT_THAT(error(o), HasSubstr("probe_timeout"));
  o.probe_interval = std::chrono::milliseconds(0);  // probes off: fine
  LinkEnv env;
  env.base = base;
  EXPECT_TRUE(MakeLink(env, o).ok());
  o = {};
  o.tcp_user_timeout = std::chrono::milliseconds(-1);
  EXPECT_THAT(error(o), HasSubstr("tcp_user_timeout"));
  o = {};
  o.sentinels = {"127.0.0.1:26379"};
  EXPECT_THAT(error(o), HasSubstr("both a master name and sentinels"));
  o.sentinel_master = "m";
  o.sentinels = {"unix:/tmp/s.sock"};
  EXPECT_THAT(error(o), HasSubstr("sentinels are host:port"));
  // Redis Cluster: seeds are host:port; not with sentinels nor database.
  o = {};
  o.cluster_seeds = {"127.0.0.1:7000", "unix:/tmp/r.sock"};
  EXPECT_THAT(error(o), HasSubstr("seeds are host:port"));
  o.cluster_seeds = {"127.0.0.1"};
  EXPECT_THAT(error(o), HasSubstr("no port"));
  o.cluster_seeds = {"127.0.0.1:7000"};
  o.database = 2;
  EXPECT_THAT(error(o), HasSubstr("only database 0"));
  o.database = 0;
  o.sentinel_master = "m";
  o.sentinels = {"127.0.0.1:26379"};
  EXPECT_THAT(error(o), HasSubstr("mutually exclusive"));
  o.sentinel_master.clear();
  o.sentinels.clear();
  EXPECT_TRUE(MakeLink(env, o).ok());
  auto no_base = MakeLink(LinkEnv{}, RedisOptions{});
  EXPECT_FALSE(no_base.ok());
  event_base_free(base);
}

// scripts.h is generated from the .lua files: each starts with its header.
TEST(RedisScriptsTest, CompiledScriptsAreTheLuaFiles) {
  EXPECT_EQ(std::string_view(kPublishScript).substr(0, 16),
            "\n-- evsse publis");
  EXPECT_EQ(std::string_view(kFetchScript).substr(0, 15), "\n-- evsse fetch");
}

// ---- Publish ---------------------------------------------------------------

TEST_F(RedisLinkTest, PublishReturnsTheStreamIdAndStoresTheEvent) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  EXPECT_TRUE(link->stats().up);

  const std::string data("a\0b\nc\r\nd", 8);
  PublishOutcome p = Publish(link.get(), "orders", "update", data);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_NE(p.epoch, 0u);
  EXPECT_GT(p.position.major, 0u);

  ReplyPtr range = redis_.Command({"XRANGE", "evsse:{orders}:s", "-", "+"});
  ASSERT_TRUE(range && range->type == REDIS_REPLY_ARRAY);
  ASSERT_EQ(range->elements, 1u);
  const redisReply* entry = range->element[0];
  EXPECT_EQ(Str(entry->element[0]), FormatStreamId(p.position));
  const redisReply* fields = entry->element[1];
  ASSERT_EQ(fields->elements, 4u);
  EXPECT_EQ(Str(fields->element[0]), "t");
  EXPECT_EQ(Str(fields->element[1]), "update");
  EXPECT_EQ(Str(fields->element[2]), "d");
  EXPECT_EQ(Str(fields->element[3]), data);  // binary-safe: \0 and \n kept

  ReplyPtr epoch = redis_.Command({"GET", "evsse:{orders}:e"});
  ASSERT_TRUE(epoch && epoch->type == REDIS_REPLY_STRING);
  EXPECT_EQ(Str(epoch.get()), FormatEpoch(p.epoch));

  // Same stream, same epoch; ids grow. An empty type is stored as is.
  PublishOutcome q = Publish(link.get(), "orders", "", "x");
  ASSERT_TRUE(q.status.ok());
  EXPECT_EQ(q.epoch, p.epoch);
  EXPECT_GT(q.position, p.position);
  EXPECT_EQ(XLen("evsse:{orders}:s"), 2);
  EXPECT_EQ(link->stats().publish_errors, 0u);
}

TEST_F(RedisLinkTest, KeyPrefixAndDatabaseAreUsed) {
  FakeSink sink;
  RedisOptions o = Options();
  o.key_prefix = "app1:";
  o.database = 3;
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  ASSERT_TRUE(Publish(link.get(), "t", "", "x").status.ok());
  ReplyPtr r = redis_.Command({"EVAL",
                               "redis.call('SELECT', 3) return "
                               "redis.call('XLEN', 'app1:{t}:s')",
                               "0"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER) << (r ? Str(r.get()) : "");
  EXPECT_EQ(r->integer, 1);
  EXPECT_EQ(XLen("app1:{t}:s"), 0);  // not in db 0
}

TEST_F(RedisLinkTest, WatchersReceiveEveryPublishedEventInOrder) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("orders");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  ASSERT_EQ(sub_sink.synced.size(), 1u);
  EXPECT_EQ(sub_sink.synced[0].epoch, 0u);  // no stream yet
  EXPECT_EQ(sub_sink.synced[0].from, Position{});

  std::vector<PublishOutcome> sent(3);
  const std::string data[] = {"one", std::string("t\0o", 3), "th\nree"};
  for (int i = 0; i < 3; ++i) {
    PublishAsync(publisher.get(), "orders", "e" + std::to_string(i), data[i],
                 &sent[i]);
  }
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 3; }));
  for (int i = 0; i < 3; ++i) {
    const auto& d = sub_sink.delivered[i];
    ASSERT_EQ(sent[i].calls, 1);
    EXPECT_EQ(d.topic, "orders");
    EXPECT_EQ(d.epoch, sent[i].epoch);
    EXPECT_EQ(d.event.position, sent[i].position);
    EXPECT_EQ(d.event.type, "e" + std::to_string(i));
    EXPECT_EQ(d.event.data, data[i]);
  }
  EXPECT_EQ(sub_sink.changes, std::vector<bool>{true});
  // Topics nobody watches are not delivered.
  ASSERT_TRUE(Publish(publisher.get(), "other", "", "x").status.ok());
  RunFor(std::chrono::milliseconds(50));
  EXPECT_EQ(sub_sink.delivered.size(), 3u);
}

TEST_F(RedisLinkTest, WatchSyncsAtTheStreamTail) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up(); }));
  std::vector<PublishOutcome> before = PublishMany(publisher.get(), "t", 3);

  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.synced.size() == 1; }));
  EXPECT_EQ(sub_sink.synced[0].epoch, before[2].epoch);
  EXPECT_EQ(sub_sink.synced[0].from, before[2].position);
  EXPECT_TRUE(sub_sink.delivered.empty());  // the past is for Fetch

  PublishOutcome next = Publish(publisher.get(), "t", "", "live");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));
  EXPECT_EQ(sub_sink.delivered[0].event.position, next.position);
}

// Events published while a watch is syncing are held and handed over after
// Synced: no gap, no duplicate, in order.
TEST_F(RedisLinkTest, WatchDuringPublishingHasNoGapAndNoDuplicate) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  auto watcher = NewLink(&sub_sink, Options());
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  std::vector<PublishOutcome> sent(400);
  for (int i = 0; i < 200; ++i) {
    PublishAsync(publisher.get(), "t", "", std::to_string(i), &sent[i]);
  }
  watcher->Watch("t");
  for (int i = 200; i < 400; ++i) {
    PublishAsync(publisher.get(), "t", "", std::to_string(i), &sent[i]);
  }
  // Done when the last event was delivered, or the sync came after it.
  ASSERT_TRUE(RunUntil([&] {
    if (sent[399].calls == 0 || sub_sink.synced.empty()) return false;
    Position last = sent[399].position;
    return sub_sink.synced[0].from == last ||
           (!sub_sink.delivered.empty() &&
            sub_sink.delivered.back().event.position == last);
  }));
  Position from = sub_sink.synced[0].from;
  EXPECT_EQ(sub_sink.synced[0].delivered_before, 0u);
  std::vector<Position> expected;
  for (const auto& s : sent)
    if (s.position > from) expected.push_back(s.position);
  std::vector<Position> got;
  for (const auto& d : sub_sink.delivered) got.push_back(d.event.position);
  EXPECT_EQ(got, expected);
}

TEST_F(RedisLinkTest, UnwatchStopsDeliveryAndAWatchAgainResyncs) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  watcher->Unwatch("t");
  ASSERT_TRUE(RunUntil([&] {
    ReplyPtr r = redis_.Command({"PUBSUB", "NUMSUB", "evsse:{t}:c"});
    return r && r->elements == 2 && r->element[1]->integer == 0;
  }));
  ASSERT_TRUE(Publish(publisher.get(), "t", "", "unseen").status.ok());
  RunFor(std::chrono::milliseconds(50));
  EXPECT_TRUE(sub_sink.delivered.empty());

  // Watch, Unwatch, Watch back to back: one more Synced, then live.
  watcher->Watch("t");
  watcher->Unwatch("t");
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.synced_count("t") == 2; }));
  RunFor(std::chrono::milliseconds(50));
  EXPECT_EQ(sub_sink.synced_count("t"), 2u);
  PublishOutcome seen = Publish(publisher.get(), "t", "", "seen");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));
  EXPECT_EQ(sub_sink.delivered[0].event.position, seen.position);
  ReplyPtr r = redis_.Command({"PUBSUB", "NUMSUB", "evsse:{t}:c"});
  EXPECT_EQ(r->element[1]->integer, 1);
}

// ---- Fetch -----------------------------------------------------------------

TEST_F(RedisLinkTest, FetchReadsRangesWithLimits) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  std::vector<PublishOutcome> p = PublishMany(link.get(), "t", 5);

  FetchOutcome f = Fetch(link.get(), "t", p[0].position, p[3].position, 2);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  EXPECT_EQ(f.result.epoch, p[0].epoch);
  EXPECT_FALSE(f.result.trimmed);
  EXPECT_TRUE(f.result.more);
  ASSERT_EQ(f.result.events.size(), 2u);
  EXPECT_EQ(f.result.events[0].position, p[1].position);
  EXPECT_EQ(f.result.events[1].position, p[2].position);
  EXPECT_EQ(f.result.events[0].type, "n");
  EXPECT_EQ(f.result.events[0].data, "1");

  f = Fetch(link.get(), "t", p[0].position, p[3].position, 10);
  ASSERT_EQ(f.result.events.size(), 3u);
  EXPECT_EQ(f.result.events[2].position, p[3].position);  // until inclusive
  EXPECT_FALSE(f.result.more);

  f = Fetch(link.get(), "t", Position{}, kEnd, 100);
  EXPECT_EQ(f.result.events.size(), 5u);
  EXPECT_FALSE(f.result.trimmed);

  f = Fetch(link.get(), "t", p[4].position, kEnd, 100);
  EXPECT_TRUE(f.result.events.empty());
  EXPECT_FALSE(f.result.more);
  EXPECT_EQ(f.result.epoch, p[0].epoch);

  f = Fetch(link.get(), "t", kEnd, kEnd, 100);  // an empty range
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  EXPECT_TRUE(f.result.events.empty());

  f = Fetch(link.get(), "missing", Position{}, kEnd, 100);
  ASSERT_TRUE(f.status.ok());
  EXPECT_EQ(f.result.epoch, 0u);
  EXPECT_TRUE(f.result.events.empty());
  EXPECT_FALSE(f.result.trimmed);
  EXPECT_FALSE(f.result.more);
  EXPECT_EQ(link->stats().replay_fetches, 6u);
}

TEST_F(RedisLinkTest, FetchReportsHistoryTrimmedByMaxlen) {
  FakeSink sink;
  RedisOptions o = Options();
  o.max_events = 10;
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  std::vector<PublishOutcome> p = PublishMany(link.get(), "t", 500);
  // MAXLEN ~ trims whole macro-nodes: fewer than 500 remain, maybe > 10.
  int64_t len = XLen("evsse:{t}:s");
  EXPECT_LT(len, 500);
  EXPECT_GE(len, 10);

  FetchOutcome f = Fetch(link.get(), "t", p[0].position, kEnd, 1000);
  ASSERT_TRUE(f.status.ok());
  EXPECT_TRUE(f.result.trimmed);
  EXPECT_EQ(static_cast<int64_t>(f.result.events.size()), len);
  EXPECT_EQ(f.result.events.back().position, p[499].position);

  f = Fetch(link.get(), "t", p[498].position, kEnd, 1000);
  EXPECT_FALSE(f.result.trimmed);
  ASSERT_EQ(f.result.events.size(), 1u);
  EXPECT_EQ(f.result.events[0].position, p[499].position);
}

// A failover, as the new primary sees it: the stream was last written by
// another server (its run_id in :w) whose clock ran 60 s ahead, so the
// entries it handed out sort above anything this server's clock gives, and
// the last of them (the client's cursor) never replicated. The first touch
// ends the epoch where this server's copy ends and starts a new one: a
// cursor up to the end reads on in the new epoch; one past it (lost) is
// told apart by the epoch, whatever the ids of new entries are.
TEST_F(RedisLinkTest, AFailoverForkEndsTheEpochWhereTheCopyEnds) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  PublishOutcome first = Publish(link.get(), "t", "n", "1");
  ASSERT_TRUE(first.status.ok());
  uint64_t old_epoch = first.epoch;
  uint64_t ahead = first.position.major + 60000;
  std::string survived = std::to_string(ahead) + "-0";
  ReplyPtr r =
      redis_.Command({"XADD", "evsse:{t}:s", survived, "t", "n", "d", "2"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
  r = redis_.Command({"SET", "evsse:{t}:w", "the-old-primary"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  Position end{ahead, 0};
  Position lost{ahead, 5};  // handed out by the old primary, never copied

  FetchOutcome f = Fetch(link.get(), "t", lost, kEnd, 100);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  uint64_t new_epoch = f.result.epoch;
  EXPECT_NE(new_epoch, old_epoch) << "a fork starts a new epoch";
  ASSERT_EQ(f.result.former.size(), 1u);
  EXPECT_EQ(f.result.former[0].epoch, old_epoch);
  EXPECT_EQ(f.result.former[0].end, end);
  EXPECT_EQ(ContinuedEnd(f.result.former, old_epoch), end);
  EXPECT_EQ(ContinuedEnd(f.result.former, new_epoch + 1), std::nullopt);
  EXPECT_TRUE(f.result.events.empty());

  // Written after the fork, in the new epoch. Its id is above the end but
  // below the lost cursor (XADD * on a server whose clock is behind):
  // only the epoch tells the lost cursor from a good one.
  PublishOutcome after = Publish(link.get(), "t", "n", "3");
  ASSERT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_EQ(after.epoch, new_epoch);
  EXPECT_GT(after.position, end);
  EXPECT_LT(after.position, lost);
  // A cursor the new primary has reads on to the new entry, no gap.
  f = Fetch(link.get(), "t", end, kEnd, 100);
  EXPECT_FALSE(f.result.trimmed);
  ASSERT_EQ(f.result.events.size(), 1u);
  EXPECT_EQ(f.result.events[0].data, "3");
  // The fork is recorded once: this server is the writer now.
  r = redis_.Command({"LLEN", "evsse:{t}:f"});
  EXPECT_TRUE(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
  // A second failover (back to the first server, whose copy ends at the
  // new entry) chains: the first epoch still ends at `end`.
  r = redis_.Command({"SET", "evsse:{t}:w", "the-old-primary"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  f = Fetch(link.get(), "t", end, kEnd, 100);
  ASSERT_EQ(f.result.former.size(), 2u);
  EXPECT_EQ(ContinuedEnd(f.result.former, new_epoch), after.position);
  EXPECT_EQ(ContinuedEnd(f.result.former, old_epoch), end);
}

// A node following a topic live sees an event of a new epoch (another node
// published first on the new primary): it reads the fork from the stream,
// tells the Hub where the old epoch ended (Continued), then delivers what
// came after, in the new epoch, nothing twice.
TEST_F(RedisLinkTest, ALiveEventOfANewEpochIsContinuedFromTheFork) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  link->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return sink.synced_count("t") == 1; }));
  PublishOutcome first = Publish(link.get(), "t", "n", "1");
  ASSERT_TRUE(first.status.ok());
  ASSERT_TRUE(RunUntil([&] { return sink.delivered.size() == 1; }));
  // The server is now "another" one than the stream's writer.
  ReplyPtr r = redis_.Command({"SET", "evsse:{t}:w", "the-old-primary"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  PublishOutcome second = Publish(link.get(), "t", "n", "2");
  ASSERT_TRUE(second.status.ok());
  EXPECT_NE(second.epoch, first.epoch);
  ASSERT_TRUE(RunUntil([&] { return sink.delivered.size() == 2; }));
  RunFor(std::chrono::milliseconds(100));
  ASSERT_EQ(sink.continued.size(), 1u);
  EXPECT_EQ(sink.continued[0].old_epoch, first.epoch);
  EXPECT_EQ(sink.continued[0].epoch, second.epoch);
  EXPECT_EQ(sink.continued[0].end, first.position);
  ASSERT_EQ(sink.delivered.size(), 2u);
  EXPECT_EQ(sink.delivered[1].epoch, second.epoch);
  EXPECT_EQ(sink.delivered[1].event.data, "2");
}

TEST_F(RedisLinkTest, MaxAgeTrimsOldEntries) {
  FakeSink sink;
  RedisOptions o = Options();
  o.max_age = std::chrono::milliseconds(100);
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  PublishMany(link.get(), "t", 250);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(Publish(link.get(), "t", "", "new").status.ok());
  // MINID ~ drops whole nodes (100 entries) that are all too old.
  EXPECT_LE(XLen("evsse:{t}:s"), 101);
}

TEST_F(RedisLinkTest, StreamTtlExpiresIdleTopicsAndEachPublishRenewsIt) {
  auto pttl = [&](const std::string& key) {
    ReplyPtr r = redis_.Command({"PTTL", key});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
  };
  FakeSink sink;
  RedisOptions o = Options();
  o.stream_ttl = std::chrono::milliseconds(1500);
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  ASSERT_TRUE(Publish(link.get(), "order-1", "", "a").status.ok());
  for (const char* key : {"evsse:{order-1}:s", "evsse:{order-1}:e"}) {
    EXPECT_GT(pttl(key), 0) << key;
    EXPECT_LE(pttl(key), 1500) << key;
  }
  // A publish renews it: let some of it run out, publish, see it back up.
  ASSERT_TRUE(RunUntil([&] { return pttl("evsse:{order-1}:s") < 1000; }));
  ASSERT_TRUE(Publish(link.get(), "order-1", "", "b").status.ok());
  EXPECT_GT(pttl("evsse:{order-1}:s"), 1000);
  EXPECT_GT(pttl("evsse:{order-1}:e"), 1000);
  // Nobody publishes: both keys go, and the topic reads as a new stream.
  ASSERT_TRUE(RunUntil(
      [&] {
        ReplyPtr r = redis_.Command(
            {"EXISTS", "evsse:{order-1}:s", "evsse:{order-1}:e"});
        return r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
      },
      std::chrono::seconds(10)));
  FetchOutcome f = Fetch(link.get(), "order-1", Position{}, kEnd, 10);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  EXPECT_EQ(f.result.epoch, 0u);
}

// ---- Publishes of one loop turn: one script call ----------------------------

// CommandCalls reads "calls=N" of one command from INFO commandstats.
long long CommandCalls(const RedisServer& redis, const std::string& command) {
  ReplyPtr r = redis.Command({"INFO", "commandstats"});
  if (!r || r->type != REDIS_REPLY_STRING) return -1;
  std::string info(r->str, r->len);
  std::string key = "cmdstat_" + command + ":calls=";
  size_t at = info.find(key);
  if (at == std::string::npos) return 0;
  return std::atoll(info.c_str() + at + key.size());
}

TEST_F(RedisLinkTest, ALoopTurnsPublishesShareScriptCallsAndKeepTheirOrder) {
  FakeSink watcher_sink;
  auto watcher = NewLink(&watcher_sink, Options());
  FakeSink sink;
  RedisOptions o = Options();
  o.max_age = std::chrono::seconds(60);
  o.stream_ttl = std::chrono::seconds(60);
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up() && watcher_sink.up(); }));
  const std::vector<std::string> topics{"a", "b", "c"};
  for (const auto& t : topics) watcher->Watch(t);
  ASSERT_TRUE(RunUntil([&] {
    return watcher_sink.synced_count("a") == 1 &&
           watcher_sink.synced_count("b") == 1 &&
           watcher_sink.synced_count("c") == 1;
  }));
  ASSERT_TRUE(redis_.Command({"CONFIG", "RESETSTAT"}));

  // 600 publishes in one turn: 256 + 256 + 88 events in three script calls.
  const int n = 600;
  std::vector<PublishOutcome> out(n);
  for (int i = 0; i < n; ++i) {
    PublishAsync(link.get(), topics[i % 3], "n", std::to_string(i), &out[i]);
  }
  ASSERT_TRUE(RunUntil([&] {
    for (const auto& x : out)
      if (x.calls == 0) return false;
    return watcher_sink.delivered.size() == static_cast<size_t>(n);
  }));
  std::map<std::string, Position> last;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(out[i].calls, 1);
    ASSERT_TRUE(out[i].status.ok()) << out[i].status.ToString();
    EXPECT_LT(last[topics[i % 3]], out[i].position) << i;
    last[topics[i % 3]] = out[i].position;
  }
  EXPECT_EQ(CommandCalls(redis_, "evalsha"), 3);
  // Upkeep once per topic (a new stream, and the first event of each
  // topic): XTRIM, and PEXPIRE of the stream, epoch and writer keys.
  EXPECT_EQ(CommandCalls(redis_, "xtrim"), 3);
  EXPECT_EQ(CommandCalls(redis_, "pexpire"), 9);
  EXPECT_EQ(CommandCalls(redis_, "xadd"), n);
  EXPECT_EQ(CommandCalls(redis_, "publish"), n);

  // Every event reached the watcher, in order per topic, with its id.
  std::map<std::string, std::vector<std::string>> got;
  for (const auto& d : watcher_sink.delivered) {
    got[d.topic].push_back(d.event.data);
  }
  for (int t = 0; t < 3; ++t) {
    std::vector<std::string> want;
    for (int i = t; i < n; i += 3) want.push_back(std::to_string(i));
    EXPECT_EQ(got[topics[t]], want) << topics[t];
  }
  for (const auto& d : watcher_sink.delivered) {
    int i = std::stoi(d.event.data);
    EXPECT_EQ(d.event.position, out[i].position);
  }

  // The next second's events of a topic get their upkeep again.
  RunFor(std::chrono::milliseconds(1100));
  ASSERT_TRUE(Publish(link.get(), "a", "", "later").status.ok());
  EXPECT_EQ(CommandCalls(redis_, "pexpire"), 12);
}

TEST_F(RedisLinkTest, AnEventThatFailsInACallFailsAloneAndTheOthersAreStored) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  ASSERT_TRUE(redis_.Command({"SET", "evsse:{bad}:s", "not a stream"}));
  PublishOutcome a1, bad, a2;
  PublishAsync(link.get(), "a", "", "1", &a1);
  PublishAsync(link.get(), "bad", "", "x", &bad);
  PublishAsync(link.get(), "a", "", "2", &a2);
  ASSERT_TRUE(RunUntil([&] { return a1.calls && bad.calls && a2.calls; }));
  EXPECT_TRUE(a1.status.ok()) << a1.status.ToString();
  EXPECT_TRUE(a2.status.ok()) << a2.status.ToString();
  EXPECT_LT(a1.position, a2.position);
  EXPECT_EQ(bad.status.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(bad.status.message(), HasSubstr("WRONGTYPE"));
  EXPECT_EQ(XLen("evsse:{a}:s"), 2);
  EXPECT_EQ(link->stats().publish_errors, 1u);
}

TEST_F(RedisLinkTest, StreamTtlDefaultsToTheHubHistoryAgeAndZeroIsNone) {
  auto pttl = [&](const std::string& key) {
    ReplyPtr r = redis_.Command({"PTTL", key});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
  };
  FakeSink sink;
  LinkEnv env;
  env.base = base_;
  env.default_stream_ttl = std::chrono::milliseconds(3600000);
  auto made = MakeLink(std::move(env), Options());
  ASSERT_TRUE(made.ok());
  std::unique_ptr<BackendLink> link = std::move(made).value();
  link->Start(&sink);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  ASSERT_TRUE(Publish(link.get(), "t", "", "a").status.ok());
  EXPECT_GT(pttl("evsse:{t}:s"), 3500000);
  EXPECT_LE(pttl("evsse:{t}:s"), 3600000);
  // No TTL anywhere: the keys never expire (-1).
  FakeSink sink2;
  auto forever = NewLink(&sink2, Options());
  ASSERT_TRUE(RunUntil([&] { return sink2.up(); }));
  ASSERT_TRUE(Publish(forever.get(), "u", "", "a").status.ok());
  EXPECT_EQ(pttl("evsse:{u}:s"), -1);
  EXPECT_EQ(pttl("evsse:{u}:e"), -1);
}

TEST_F(RedisLinkTest, ScriptCacheLossFallsBackToEval) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  ReplyPtr r = redis_.Command({"SCRIPT", "FLUSH"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STATUS);
  PublishOutcome p = Publish(link.get(), "t", "", "x");
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  redis_.Command({"SCRIPT", "FLUSH"});
  FetchOutcome f = Fetch(link.get(), "t", Position{}, kEnd, 10);
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  EXPECT_EQ(f.result.events.size(), 1u);
}

// ---- Epochs ----------------------------------------------------------------

TEST_F(RedisLinkTest, DeletedStreamGetsANewEpoch) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  PublishOutcome first = Publish(publisher.get(), "t", "", "1");
  ASSERT_TRUE(redis_.Command({"FLUSHALL"}) != nullptr);
  PublishOutcome second = Publish(publisher.get(), "t", "", "2");
  ASSERT_TRUE(second.status.ok());
  EXPECT_NE(second.epoch, first.epoch);
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 2; }));
  EXPECT_EQ(sub_sink.delivered[0].epoch, first.epoch);
  EXPECT_EQ(sub_sink.delivered[1].epoch, second.epoch);
  EXPECT_EQ(sub_sink.delivered[1].event.position, second.position);

  // A stream without its epoch key (evicted) gets one again.
  ASSERT_TRUE(redis_.Command({"DEL", "evsse:{t}:e"}) != nullptr);
  FetchOutcome f = Fetch(publisher.get(), "t", Position{}, kEnd, 10);
  EXPECT_NE(f.result.epoch, 0u);
  PublishOutcome third = Publish(publisher.get(), "t", "", "3");
  EXPECT_EQ(third.epoch, f.result.epoch);
}

// ---- Outages ---------------------------------------------------------------

// ---- Durable publishes (wait_replicas) ------------------------------------

TEST_F(RedisLinkTest, WaitReplicasAcknowledgesOnlyWhatReplicasHave) {
  RedisServer::Options tcp;
  tcp.tcp = true;
  RedisServer primary(tcp);
  RedisServer replica(tcp);
  ASSERT_TRUE(primary.Start());
  ASSERT_TRUE(replica.Start());
  // The first sync would otherwise wait 5 s for more replicas to join.
  ASSERT_TRUE(
      primary.Command({"CONFIG", "SET", "repl-diskless-sync-delay", "0"}));
  ASSERT_TRUE(replica.Command(
      {"REPLICAOF", "127.0.0.1", std::to_string(primary.port())}));
  auto info_has = [](const RedisServer& r, const std::string& what) {
    ReplyPtr i = r.Command({"INFO", "replication"});
    return i && i->type == REDIS_REPLY_STRING &&
           std::string(i->str, i->len).find(what) != std::string::npos;
  };
  ASSERT_TRUE(RunUntil([&] {
    return info_has(primary, "connected_slaves:1") &&
           info_has(replica, "master_link_status:up");
  }));
  // Replication acknowledges: a write is confirmed by WAIT (the replica may
  // still be loading right after the link came up).
  ASSERT_TRUE(RunUntil([&] {
    primary.Command({"SET", "warm", "1"});
    ReplyPtr w = primary.Command({"WAIT", "1", "200"});
    return w && w->type == REDIS_REPLY_INTEGER && w->integer == 1;
  }));
  FakeSink sink;
  RedisOptions o = Options();
  o.address = primary.address();
  o.wait_replicas = 1;
  // Generous for a loaded machine; below command_timeout and probe_timeout.
  o.wait_timeout = std::chrono::milliseconds(2000);
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  auto xlen = [](const RedisServer& r) {
    ReplyPtr n = r.Command({"XLEN", "evsse:{t}:s"});
    return n && n->type == REDIS_REPLY_INTEGER ? n->integer : -1;
  };

  // The replica has it: acknowledged with the stream id.
  PublishOutcome ok = Publish(link.get(), "t", "", "replicated");
  ASSERT_TRUE(ok.status.ok()) << ok.status.ToString();
  EXPECT_NE(ok.position, Position{});
  EXPECT_EQ(xlen(replica), 1);

  // A replica that does not answer: stored on the primary, but never a
  // plain success (504 for an HTTP publisher).
  replica.Pause();
  PublishOutcome unsure = Publish(link.get(), "t", "", "unconfirmed");
  replica.Resume();
  EXPECT_EQ(unsure.status.code(), StatusCode::kUnknown);
  EXPECT_THAT(unsure.status.message(), HasSubstr("0 of 1 replicas"));
  EXPECT_EQ(xlen(primary), 2);
  EXPECT_EQ(link->stats().unreplicated_publishes, 1u);

  // Once it answers again, publishes are acknowledged again.
  ASSERT_TRUE(RunUntil([&] { return xlen(replica) == 2; }));
  EXPECT_TRUE(Publish(link.get(), "t", "", "again").status.ok());
}

TEST_F(RedisLinkTest, WaitReplicasWithoutEnoughReplicasIsNeverASuccess) {
  FakeSink sink;
  RedisOptions o = Options();  // a Redis with no replica at all
  o.wait_replicas = 1;
  o.wait_timeout = std::chrono::milliseconds(200);
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  PublishOutcome p = Publish(link.get(), "t", "", "x");
  EXPECT_EQ(p.status.code(), StatusCode::kUnknown);
  EXPECT_EQ(XLen("evsse:{t}:s"), 1);  // stored on the primary all the same
  // A wait_timeout the command connection cannot afford is refused.
  o.wait_timeout = o.command_timeout;
  LinkEnv env;
  env.base = base_;
  EXPECT_FALSE(MakeLink(env, o).ok());
}

TEST_F(RedisLinkTest, PublishFailsAtOnceWhileRedisIsDown) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  redis_.Stop();
  ASSERT_TRUE(RunUntil([&] { return sink.down(); }));
  EXPECT_FALSE(link->stats().up);

  PublishOutcome out;
  PublishAsync(link.get(), "t", "", "x", &out);
  EXPECT_EQ(out.calls, 0);  // never inside Publish
  // At once: in the loop's next turn, which waits for nothing (no timer,
  // no reply), however slow the machine.
  event_base_loop(base_, EVLOOP_NONBLOCK);
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(out.status.message(), HasSubstr("redis link down ("));
  EXPECT_GE(link->stats().publish_errors, 1u);
  EXPECT_FALSE(link->stats().last_error.empty());

  FetchOutcome f;
  FetchAsync(link.get(), "t", Position{}, kEnd, 10, &f);
  ASSERT_TRUE(RunUntil([&] { return f.calls > 0; }));
  EXPECT_EQ(f.status.code(), StatusCode::kUnavailable);

  // It comes back by itself.
  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  EXPECT_TRUE(Publish(link.get(), "t", "", "x").status.ok());
  EXPECT_EQ(link->stats().reconnects, 1u);
  EXPECT_EQ(sink.changes, (std::vector<bool>{true, false, true}));
}

TEST_F(RedisLinkTest, BackfillsEveryMissedEventBeforeSynced) {
  FakeSink pub_sink, sub_sink;
  RedisOptions keep = Options();
  keep.max_events = 100000;  // nothing trimmed: all of it can be back-filled
  auto publisher = NewLink(&pub_sink, keep);
  RedisOptions slow = Options();
  // The watcher comes back late, after the events it must back-fill.
  slow.reconnect_min = slow.reconnect_max = std::chrono::milliseconds(3000);
  auto watcher = NewLink(&sub_sink, slow);
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  std::vector<PublishOutcome> live = PublishMany(publisher.get(), "t", 2);
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 2; }));

  redis_.Stop(/*save=*/true);
  ASSERT_TRUE(RunUntil([&] { return pub_sink.down() && sub_sink.down(); }));
  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up(); }));
  // More than one back-fill page (1000).
  std::vector<PublishOutcome> missed = PublishMany(publisher.get(), "t", 1205);
  ASSERT_TRUE(sub_sink.down()) << "the watcher reconnected too early";
  // A server restarted from its files may have lost its newest entries:
  // the stream goes on under a new epoch, continuing the old one up to
  // where the copy ends (here: everything).
  EXPECT_NE(missed[0].epoch, live[0].epoch);

  ASSERT_TRUE(RunUntil([&] { return sub_sink.up(); }));
  ASSERT_EQ(sub_sink.continued.size(), 1u);
  EXPECT_EQ(sub_sink.continued[0].old_epoch, live[0].epoch);
  EXPECT_EQ(sub_sink.continued[0].epoch, missed[0].epoch);
  EXPECT_EQ(sub_sink.continued[0].end, live[1].position);
  ASSERT_EQ(sub_sink.synced.size(), 2u);
  const auto& resync = sub_sink.synced[1];
  EXPECT_EQ(resync.epoch, missed[0].epoch);
  EXPECT_EQ(resync.from, live[1].position);
  EXPECT_EQ(resync.delivered_before, 2u + missed.size());
  ASSERT_EQ(sub_sink.delivered.size(), 2u + missed.size());
  for (size_t i = 0; i < missed.size(); ++i) {
    const auto& d = sub_sink.delivered[2 + i];
    EXPECT_EQ(d.event.position, missed[i].position) << i;
    EXPECT_EQ(d.event.data, std::to_string(i));
  }
  LinkStats stats = watcher->stats();
  EXPECT_EQ(stats.backfilled_events, missed.size());
  EXPECT_EQ(stats.reconnects, 1u);
  EXPECT_TRUE(stats.up);

  PublishOutcome after = Publish(publisher.get(), "t", "", "live again");
  ASSERT_TRUE(RunUntil([&] {
    return sub_sink.delivered.back().event.position == after.position;
  }));
}

TEST_F(RedisLinkTest, RecreatedStreamSyncsAtItsTailInsteadOfBackfilling) {
  FakeSink pub_sink, sub_sink;
  auto publisher = NewLink(&pub_sink, Options());
  RedisOptions slow = Options();
  slow.reconnect_min = slow.reconnect_max = std::chrono::milliseconds(3000);
  auto watcher = NewLink(&sub_sink, slow);
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  PublishOutcome old = Publish(publisher.get(), "t", "", "old");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));

  redis_.Stop();  // the data is gone
  ASSERT_TRUE(RunUntil([&] { return pub_sink.down() && sub_sink.down(); }));
  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up(); }));
  std::vector<PublishOutcome> fresh = PublishMany(publisher.get(), "t", 2);
  ASSERT_TRUE(sub_sink.down()) << "the watcher reconnected too early";
  EXPECT_NE(fresh[0].epoch, old.epoch);

  ASSERT_TRUE(RunUntil([&] { return sub_sink.up(); }));
  ASSERT_EQ(sub_sink.synced.size(), 2u);
  EXPECT_EQ(sub_sink.synced[1].epoch, fresh[0].epoch);
  EXPECT_EQ(sub_sink.synced[1].from, fresh[1].position);
  EXPECT_EQ(sub_sink.delivered.size(), 1u);  // nothing back-filled
  EXPECT_EQ(watcher->stats().backfilled_events, 0u);
}

// Trimmed past the watcher's position while it was away: it cannot fill the
// gap, so it syncs at the tail (the Hub then knows its subscribers missed
// events) and delivers nothing stale.
TEST_F(RedisLinkTest, StreamTrimmedDuringAnOutageSyncsAtItsTail) {
  FakeSink pub_sink, sub_sink;
  RedisOptions small = Options();
  small.max_events = 10;
  auto publisher = NewLink(&pub_sink, small);
  RedisOptions slow = Options();
  slow.reconnect_min = slow.reconnect_max = std::chrono::milliseconds(3000);
  auto watcher = NewLink(&sub_sink, slow);
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  PublishOutcome seen = Publish(publisher.get(), "t", "", "seen");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));

  redis_.Stop(/*save=*/true);
  ASSERT_TRUE(RunUntil([&] { return pub_sink.down() && sub_sink.down(); }));
  ASSERT_TRUE(redis_.Start());
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up(); }));
  std::vector<PublishOutcome> missed = PublishMany(publisher.get(), "t", 500);
  ASSERT_TRUE(sub_sink.down()) << "the watcher reconnected too early";
  EXPECT_NE(missed[0].epoch, seen.epoch);  // continued (see above)

  ASSERT_TRUE(RunUntil([&] { return sub_sink.up(); }));
  ASSERT_EQ(sub_sink.continued.size(), 1u);
  EXPECT_EQ(sub_sink.continued[0].end, seen.position);
  ASSERT_EQ(sub_sink.synced.size(), 2u);
  EXPECT_EQ(sub_sink.synced[1].epoch, missed[0].epoch);
  EXPECT_EQ(sub_sink.synced[1].from, missed.back().position);
  EXPECT_EQ(sub_sink.delivered.size(), 1u);
  EXPECT_EQ(watcher->stats().backfilled_events, 0u);
}

// Either connection dropping takes the whole link down and back up again,
// re-subscribed and re-synced.
TEST_F(RedisLinkTest, LosingTheSubscriberConnectionResyncs) {
  FakeSink pub_sink, sub_sink;
  // Without probes the publisher subscribes to nothing, so the kill below
  // finds only the watcher's subscriber connection.
  RedisOptions no_probes = Options();
  no_probes.probe_interval = std::chrono::milliseconds(0);
  auto publisher = NewLink(&pub_sink, no_probes);
  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  ReplyPtr killed = redis_.Command({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(killed && killed->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(killed->integer, 1);
  ASSERT_TRUE(RunUntil([&] { return sub_sink.changes.size() == 3; }));
  EXPECT_EQ(sub_sink.changes, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(sub_sink.synced_count("t"), 2u);
  EXPECT_THAT(watcher->stats().last_error, HasSubstr("lost"));
  PublishOutcome p = Publish(publisher.get(), "t", "", "after");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));
  EXPECT_EQ(sub_sink.delivered[0].event.position, p.position);
  EXPECT_EQ(pub_sink.changes, std::vector<bool>{true});
}

// ---- Liveness probes -------------------------------------------------------

// A quiet link probes its subscription and reports the round trip.
TEST_F(RedisLinkTest, AQuietLinkProbesItsSubscription) {
  FakeSink sink;
  RedisOptions o = Options();
  o.probe_interval = std::chrono::milliseconds(50);
  auto link = NewLink(&sink, o);
  link->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  EXPECT_TRUE(link->stats().delivering);
  ASSERT_TRUE(RunUntil([&] { return link->stats().probes_sent >= 3; }));
  ASSERT_TRUE(
      RunUntil([&] { return link->stats().last_probe_age.count() >= 0; }));
  LinkStats s = link->stats();
  EXPECT_GT(s.delivery_lag.count(), 0);
  EXPECT_EQ(s.probes_missed, 0u);
  EXPECT_TRUE(s.delivering);
  // Probes are not events: nothing reaches the sink.
  EXPECT_TRUE(sink.delivered.empty());
  EXPECT_EQ(sink.changes, std::vector<bool>{true});
}

// A hung Redis (SIGSTOP) is noticed by a node that publishes nothing: its
// probe goes unanswered. Commands would take command_timeout (30 s here) to
// notice. What another node published meanwhile is back-filled.
TEST_F(RedisLinkTest, AHungRedisIsNoticedByAProbeAndBackfilled) {
  FakeSink pub_sink, sub_sink;
  RedisOptions patient = Options();
  patient.command_timeout = std::chrono::milliseconds(30000);
  patient.probe_interval = std::chrono::milliseconds(0);
  auto publisher = NewLink(&pub_sink, patient);
  RedisOptions o = Options();
  o.command_timeout = std::chrono::milliseconds(30000);
  o.probe_interval = std::chrono::milliseconds(200);
  o.probe_timeout = std::chrono::milliseconds(500);
  std::vector<std::string> log;
  auto watcher = NewLink(&sub_sink, o, &log);
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  PublishOutcome seen = Publish(publisher.get(), "t", "", "seen");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 1; }));

  redis_.Pause();
  ASSERT_TRUE(
      RunUntil([&] { return sub_sink.down(); }, std::chrono::seconds(20)));
  LinkStats s = watcher->stats();
  EXPECT_FALSE(s.delivering);
  EXPECT_FALSE(s.up);
  EXPECT_GE(s.probes_missed, 1u);
  EXPECT_THAT(s.last_error, HasSubstr("probe not answered within 500 ms"));
  // Publishes fail at once while the link is down.
  PublishOutcome refused = Publish(watcher.get(), "t", "", "refused");
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  // Sent to the hung server: it runs once Redis resumes, while the watcher
  // is away.
  PublishOutcome missed;
  PublishAsync(publisher.get(), "t", "", "missed", &missed);
  RunFor(std::chrono::milliseconds(100));
  redis_.Resume();
  ASSERT_TRUE(RunUntil([&] { return missed.calls == 1; }));
  ASSERT_TRUE(missed.status.ok()) << missed.status.ToString();
  ASSERT_TRUE(
      RunUntil([&] { return sub_sink.up(); }, std::chrono::seconds(20)));
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 2; }));
  EXPECT_EQ(sub_sink.delivered[0].event.position, seen.position);
  EXPECT_EQ(sub_sink.delivered[1].event.position, missed.position);
  EXPECT_EQ(sub_sink.delivered[1].event.data, "missed");
  EXPECT_TRUE(watcher->stats().delivering);
  bool logged = false;
  for (const auto& line : log)
    logged |= line.find("probe not answered") != std::string::npos;
  EXPECT_TRUE(logged);
  // Once resynced, live delivery goes on.
  PublishOutcome after = Publish(publisher.get(), "t", "", "after");
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() == 3; }));
  EXPECT_EQ(sub_sink.delivered[2].event.position, after.position);
}

// A subscriber connection the server closed (CLIENT KILL sends a FIN) while
// another node publishes: every event arrives once, in order.
TEST_F(RedisLinkTest, AKilledSubscriberConnectionLosesNoEvent) {
  FakeSink pub_sink, sub_sink;
  RedisOptions no_probes = Options();
  no_probes.probe_interval = std::chrono::milliseconds(0);
  auto publisher = NewLink(&pub_sink, no_probes);
  auto watcher = NewLink(&sub_sink, Options());
  watcher->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return pub_sink.up() && sub_sink.up(); }));
  std::vector<PublishOutcome> out(60);
  for (int i = 0; i < 60; ++i) {
    if (i == 20 || i == 40) {
      ReplyPtr killed = redis_.Command({"CLIENT", "KILL", "TYPE", "pubsub"});
      ASSERT_TRUE(killed && killed->type == REDIS_REPLY_INTEGER);
    }
    PublishAsync(publisher.get(), "t", "", std::to_string(i), &out[i]);
    RunFor(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(RunUntil([&] { return out.back().calls == 1; }));
  ASSERT_TRUE(RunUntil([&] { return sub_sink.delivered.size() >= 60; }));
  ASSERT_TRUE(RunUntil([&] { return sub_sink.up(); }));
  ASSERT_EQ(sub_sink.delivered.size(), 60u);
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(out[i].status.ok()) << i;
    EXPECT_EQ(sub_sink.delivered[i].event.position, out[i].position) << i;
  }
  EXPECT_GE(watcher->stats().reconnects, 1u);
}

TEST_F(RedisLinkTest, DestroyedWhileConnectingOrWaitingToReconnect) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  link->Watch("t");
  link.reset();  // the handshake is in flight
  redis_.Pause();
  link = NewLink(&sink, Options());
  RunFor(std::chrono::milliseconds(30));
  link.reset();  // connected at the socket level, no reply yet
  redis_.Resume();
  redis_.Stop();
  link = NewLink(&sink, Options());
  RunFor(std::chrono::milliseconds(30));
  link.reset();  // a reconnect timer is pending
  RunFor(std::chrono::milliseconds(30));
  EXPECT_TRUE(sink.changes.empty());
  EXPECT_TRUE(sink.synced.empty());
}

TEST_F(RedisLinkTest, CommandTimeoutFailsThePendingPublishAndRecovers) {
  FakeSink sink;
  RedisOptions o = Options();
  o.command_timeout = std::chrono::milliseconds(300);
  o.connect_timeout = std::chrono::milliseconds(300);
  std::vector<std::string> log;
  auto link = NewLink(&sink, o, &log);
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));

  redis_.Pause();
  PublishOutcome out;
  auto start = Clock::now();
  PublishAsync(link.get(), "t", "", "x", &out);
  // Redis stays paused until the outcome is in: only the command timeout
  // can end the wait (the message below says so), never before it.
  ASSERT_TRUE(RunUntil([&] { return out.calls > 0; }));
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  // The script was sent before the timeout: its outcome is unknown, not
  // "unavailable" (which would mean "not published, safe to retry").
  EXPECT_EQ(out.status.code(), StatusCode::kUnknown);
  EXPECT_THAT(out.status.message(), HasSubstr("timed out"));
  EXPECT_THAT(out.status.message(), HasSubstr("may have been stored"));
  EXPECT_TRUE(RunUntil([&] { return sink.down(); }));
  EXPECT_THAT(link->stats().last_error, HasSubstr("timed out"));

  RunFor(std::chrono::milliseconds(700));  // a few reconnects time out too
  EXPECT_FALSE(sink.up());
  redis_.Resume();
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  EXPECT_TRUE(Publish(link.get(), "t", "", "y").status.ok());
  EXPECT_EQ(out.calls, 1);
  // Why: Redis read the abandoned script from its socket once resumed and
  // ran it, so the publish that "failed" is stored (before "y").
  ReplyPtr range = redis_.Command({"XRANGE", "evsse:{t}:s", "-", "+"});
  ASSERT_TRUE(range && range->type == REDIS_REPLY_ARRAY);
  std::vector<std::string> datas;
  for (size_t i = 0; i < range->elements; ++i) {
    const redisReply* f = range->element[i]->element[1];
    for (size_t j = 0; j + 1 < f->elements; j += 2)
      if (std::string(f->element[j]->str) == "d")
        datas.emplace_back(f->element[j + 1]->str, f->element[j + 1]->len);
  }
  EXPECT_EQ(datas, (std::vector<std::string>{"x", "y"}));
  EXPECT_GE(link->stats().reconnects, 1u);
  bool logged = false;
  for (const auto& line : log)
    logged |= line.find("timed out") != std::string::npos;
  EXPECT_TRUE(logged);
}

TEST_F(RedisLinkTest, UnreachableAddressesAreRetriedAndReported) {
  FakeSink sink;
  RedisOptions o = Options();
  o.address = "unix:" + redis_.dir() + "/missing.sock";
  auto link = NewLink(&sink, o);
  ASSERT_TRUE(RunUntil([&] { return !link->stats().last_error.empty(); }));
  EXPECT_THAT(link->stats().last_error, HasSubstr("No such file"));

  FakeSink tcp_sink;
  RedisOptions t = Options();
  t.address = "127.0.0.1:" + std::to_string(testing::FreeTcpPort());
  auto tcp = NewLink(&tcp_sink, t);
  ASSERT_TRUE(RunUntil([&] { return !tcp->stats().last_error.empty(); }));
  EXPECT_THAT(tcp->stats().last_error, HasSubstr("refused"));
  RunFor(std::chrono::milliseconds(300));  // several retries, no crash
  EXPECT_TRUE(sink.changes.empty());
  EXPECT_TRUE(tcp_sink.changes.empty());
  EXPECT_EQ(Publish(link.get(), "t", "", "x").status.code(),
            StatusCode::kUnavailable);
}

TEST(RedisAuthTest, PasswordsAreCheckedAndFailuresReported) {
  RedisServer::Options so;
  so.password = "s3cret";
  RedisServer redis(so);
  ASSERT_TRUE(redis.Start());
  event_base* base = event_base_new();
  auto run_until = [base](const std::function<bool()>& done) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    timeval tv{0, 5000};
    while (!done() && Clock::now() < deadline) {
      event_base_loopexit(base, &tv);
      event_base_dispatch(base);
    }
    return done();
  };
  auto make = [&](const std::string& user, const std::string& password,
                  FakeSink* sink, std::vector<std::string>* log) {
    RedisOptions o;
    o.address = redis.address();
    o.username = user;
    o.password = password;
    o.reconnect_min = std::chrono::milliseconds(20);
    o.reconnect_max = std::chrono::milliseconds(100);
    LinkEnv env;
    env.base = base;
    env.log = [log](std::string_view l) { log->emplace_back(l); };
    auto link = std::move(MakeLink(std::move(env), o)).value();
    link->Start(sink);
    return link;
  };
  {
    FakeSink sink;
    std::vector<std::string> log;
    auto link = make("", "wrong", &sink, &log);
    ASSERT_TRUE(run_until([&] { return !link->stats().last_error.empty(); }));
    EXPECT_THAT(link->stats().last_error, HasSubstr("AUTH failed"));
    EXPECT_THAT(link->stats().last_error, HasSubstr("WRONGPASS"));
    EXPECT_FALSE(link->stats().up);
    ASSERT_FALSE(log.empty());
    EXPECT_THAT(log[0], HasSubstr("AUTH failed"));
    EXPECT_TRUE(sink.changes.empty());
  }
  {
    FakeSink sink;
    std::vector<std::string> log;
    auto link = make("", "", &sink, &log);
    ASSERT_TRUE(run_until([&] { return !link->stats().last_error.empty(); }));
    EXPECT_THAT(link->stats().last_error, HasSubstr("NOAUTH"));
  }
  for (const char* user : {"", "default"}) {
    FakeSink sink;
    std::vector<std::string> log;
    auto link = make(user, "s3cret", &sink, &log);
    ASSERT_TRUE(run_until([&] { return sink.up(); })) << user;
    int calls = 0;
    Status status;
    link->Publish("t", "", "x", [&](Status s, uint64_t, Position) {
      ++calls;
      status = s;
    });
    ASSERT_TRUE(run_until([&] { return calls > 0; }));
    EXPECT_TRUE(status.ok()) << status.ToString();
  }
  event_base_free(base);
}

TEST(RedisTcpTest, WorksOverTcp) {
  RedisServer::Options so;
  so.tcp = true;
  RedisServer redis(so);
  ASSERT_TRUE(redis.Start());
  EXPECT_EQ(redis.address(), "127.0.0.1:" + std::to_string(redis.port()));
  event_base* base = event_base_new();
  {
    FakeSink sink;
    RedisOptions o;
    o.address = redis.address();
    LinkEnv env;
    env.base = base;
    auto link = std::move(MakeLink(std::move(env), o)).value();
    link->Start(&sink);
    link->Watch("t");
    int calls = 0;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    timeval tv{0, 5000};
    while (!sink.up() && Clock::now() < deadline) {
      event_base_loopexit(base, &tv);
      event_base_dispatch(base);
    }
    ASSERT_TRUE(sink.up());
    link->Publish("t", "", "over tcp",
                  [&](Status s, uint64_t, Position) { calls += s.ok(); });
    while ((calls == 0 || sink.delivered.empty()) && Clock::now() < deadline) {
      event_base_loopexit(base, &tv);
      event_base_dispatch(base);
    }
    EXPECT_EQ(calls, 1);
    ASSERT_EQ(sink.delivered.size(), 1u);
    EXPECT_EQ(sink.delivered[0].event.data, "over tcp");
  }
  event_base_free(base);
}

// ---- Callbacks fire exactly once ------------------------------------------

TEST_F(RedisLinkTest, EveryCallbackFiresOnceWhenTheLinkIsDestroyed) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  link->Watch("t");
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  redis_.Pause();  // nothing completes from here on
  std::vector<PublishOutcome> publishes(50);
  std::vector<FetchOutcome> fetches(10);
  for (auto& p : publishes) PublishAsync(link.get(), "t", "", "x", &p);
  for (auto& f : fetches) FetchAsync(link.get(), "t", Position{}, kEnd, 5, &f);
  RunFor(std::chrono::milliseconds(20));
  link.reset();
  for (const auto& p : publishes) {
    EXPECT_EQ(p.calls, 1);
    EXPECT_EQ(p.status.code(), StatusCode::kCancelled);
  }
  for (const auto& f : fetches) {
    EXPECT_EQ(f.calls, 1);
    EXPECT_EQ(f.status.code(), StatusCode::kCancelled);
  }
  RunFor(std::chrono::milliseconds(20));
  for (const auto& p : publishes) EXPECT_EQ(p.calls, 1);
  redis_.Resume();
}

TEST_F(RedisLinkTest, FailuresQueuedWhileDownStillFireOnceAtDestruction) {
  FakeSink sink;
  RedisOptions o = Options();
  o.address = "unix:" + redis_.dir() + "/missing.sock";
  auto link = NewLink(&sink, o);
  PublishOutcome publish;
  PublishAsync(link.get(), "t", "", "x", &publish);
  FetchOutcome fetch;
  FetchAsync(link.get(), "t", Position{}, kEnd, 5, &fetch);
  link.reset();  // before the loop ran the deferred failures
  EXPECT_EQ(publish.calls, 1);
  EXPECT_EQ(publish.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(fetch.calls, 1);
  RunFor(std::chrono::milliseconds(20));
  EXPECT_EQ(publish.calls, 1);
  EXPECT_EQ(fetch.calls, 1);
}

TEST_F(RedisLinkTest, CallbacksOfALostConnectionFireOnce) {
  FakeSink sink;
  auto link = NewLink(&sink, Options());
  ASSERT_TRUE(RunUntil([&] { return sink.up(); }));
  redis_.Pause();
  std::vector<PublishOutcome> publishes(20);
  for (auto& p : publishes) PublishAsync(link.get(), "t", "", "x", &p);
  redis_.Stop();  // resumes, then terminates: the connection drops
  ASSERT_TRUE(RunUntil([&] {
    for (const auto& p : publishes)
      if (p.calls == 0) return false;
    return true;
  }));
  RunFor(std::chrono::milliseconds(50));
  for (const auto& p : publishes) {
    EXPECT_EQ(p.calls, 1);
    // Either served before the shutdown or, sent but unanswered, of
    // unknown outcome (never "unavailable": Redis may have run it).
    if (!p.status.ok()) {
      EXPECT_EQ(p.status.code(), StatusCode::kUnknown) << p.status.ToString();
    }
  }
}

// ---- Attach: a real Hub ----------------------------------------------------

TEST_F(RedisLinkTest, AttachRoutesHubPublishesThroughRedis) {
  auto hub = Hub::Create(base_, {});
  ASSERT_TRUE(hub.ok());
  RedisOptions o = Options();
  auto link = Attach(hub->get(), o);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  ASSERT_TRUE(RunUntil([&] { return (*link)->stats().up; }));
  int calls = 0;
  Result<std::string> id = InternalError("no callback");
  ASSERT_TRUE((*hub)
                  ->Publish("orders", {"update", "42"},
                            [&](Result<std::string> r) {
                              ++calls;
                              id = std::move(r);
                            })
                  .ok());
  ASSERT_TRUE(RunUntil([&] { return calls > 0; }));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ReplyPtr range = redis_.Command({"XRANGE", "evsse:{orders}:s", "-", "+"});
  ASSERT_TRUE(range && range->elements == 1);
  ReplyPtr epoch = redis_.Command({"GET", "evsse:{orders}:e"});
  std::string expected;
  pubsub::AppendPosition(expected,
                         {*ParseEpoch(Str(epoch.get())),
                          *ParseStreamId(Str(range->element[0]->element[0]))});
  EXPECT_EQ(*id, expected);

  EXPECT_EQ(Attach(nullptr, o).status().code(), StatusCode::kInvalidArgument);
  o.address = "nowhere";
  EXPECT_EQ(Attach(hub->get(), o).status().code(),
            StatusCode::kInvalidArgument);
  link->reset();  // detaches from the Hub first
}

}  // namespace
}  // namespace evsse::redis
