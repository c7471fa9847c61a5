// evsse::kafka against librdkafka's mock cluster (tests/kafka/mock_cluster,
// 3 brokers on loopback, one per test): two Hubs in this process on one
// loop (nodes A and B), records produced through evsse and with kcat,
// subscribers over HTTP. Resume on the other node from composite cursors
// (several partitions, several topics), brokers and leaders taken down and
// back while publishing, retention past a cursor (gap), a topic created
// after its subscriber.
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "alerts_process.h"
#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/kafka.h"
#include "http_fixture.h"
#include "kafka/link.h"
#include "node_process.h"

extern char** environ;

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

// Child: a process with a pipe to its stdin (and one from its stdout),
// stopped by pid.
class Child {
 public:
  ~Child() { Stop(); }
  bool Start(const std::vector<std::string>& argv, bool read_stdout) {
    int in[2], out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) != 0) return false;
    if (read_stdout && pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (read_stdout) posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (read_stdout) close(out[1]);
    in_ = in[1];
    out_ = out[0];
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }
  void Write(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = write(in_, s.data() + done, s.size() - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  void CloseStdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  // ReadLine waits (up to `timeout`) for one line of the child's stdout.
  std::optional<std::string> ReadLine(milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char b[4096];
      ssize_t n = read(out_, b, sizeof(b));
      if (n <= 0) return std::nullopt;
      buf_.append(b, static_cast<size_t>(n));
    }
  }
  // Wait closes stdin and reaps the child; its exit status.
  int Wait() {
    CloseStdin();
    int status = -1;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_ >= 0) close(out_);
    out_ = -1;
    return status;
  }
  void Stop() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    Wait();
  }
  // Stop(sig): send `sig`, then reap; the exit code (-1 if signalled).
  int Stop(int sig) {
    if (pid_ > 0) kill(pid_, sig);
    int status = Wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buf_;
};

// MockCluster: tests/kafka/mock_cluster as a child.
class MockCluster {
 public:
  bool Start() {
    if (!child_.Start({EVSSE_KAFKA_MOCK_BIN, "3"}, true)) return false;
    std::optional<std::string> line = child_.ReadLine(milliseconds(10000));
    if (!line || line->rfind("bootstrap ", 0) != 0) return false;
    bootstrap_ = line->substr(10);
    return true;
  }
  // Command sends one command; its answer ("ok ..." or "error ...").
  std::string Command(const std::string& cmd) {
    child_.Write(cmd + "\n");
    return child_.ReadLine(milliseconds(60000)).value_or("error no answer");
  }
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  Child child_;
  std::string bootstrap_;
};

// Kcat produces `values` (one record each) to topic/partition with kcat,
// each with `headers` ("name=value").
::testing::AssertionResult Kcat(const std::string& bootstrap,
                                const std::string& topic, int partition,
                                const std::vector<std::string>& headers,
                                const std::vector<std::string>& values) {
  std::vector<std::string> argv = {
      "kcat", "-P",   "-b", bootstrap,
      "-t",   topic,  "-p", std::to_string(partition),
      "-D",   "\x1e", "-c", std::to_string(values.size())};
  for (const std::string& h : headers) {
    argv.push_back("-H");
    argv.push_back(h);
  }
  Child kcat;
  if (!kcat.Start(argv, false))
    return ::testing::AssertionFailure() << "cannot start kcat";
  std::string all;
  for (const std::string& v : values) all += v + "\x1e";
  kcat.Write(all);
  int status = kcat.Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return ::testing::AssertionFailure() << "kcat ended with " << status;
  return ::testing::AssertionSuccess();
}

std::unique_ptr<TestClient> Subscribe(int port, const std::string& target,
                                      const std::string& last_id = "") {
  std::string r = "GET " + target +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Accept: text/event-stream\r\n";
  if (!last_id.empty()) r += "Last-Event-ID: " + last_id + "\r\n";
  return std::make_unique<TestClient>(port, r + "\r\n");
}

// ByPrefix keeps the events whose data starts with `prefix` (one
// partition's records in the tests below), in the order seen.
std::vector<std::string> ByPrefix(const TestClient& c,
                                  const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : c.events)
    if (e.data.rfind(prefix, 0) == 0) out.push_back(e.data);
  return out;
}

class KafkaTest : public HttpFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start()) << "kafka_mock_cluster did not start";
    HttpFixture::SetUp();
  }
  void TearDown() override {
    StopNodes();
    HttpFixture::TearDown();
  }
  void StopNodes() {
    if (http_b_ != nullptr) evhttp_free(http_b_);
    http_b_ = nullptr;
    link_b_.reset();
    hub_b_.reset();
    FreeServer();
    link_a_.reset();
    hub_.reset();
  }

  kafka::KafkaOptions Options(const MockCluster* cluster = nullptr) const {
    if (cluster == nullptr) cluster = &cluster_;
    kafka::KafkaOptions o;
    o.brokers = {
        cluster->bootstrap().substr(0, cluster->bootstrap().find(','))};
    o.metadata_refresh = milliseconds(500);
    o.settings = {{"log_level", "2"}};
    o.publish_timeout = milliseconds(2000);
    return o;
  }

  // StartNodes starts node A (and B, on `b_cluster` if given) and waits
  // until the links are up.
  void StartNodes(bool with_b, const MockCluster* b_cluster = nullptr) {
    StartServer();
    auto a = kafka::Attach(hub_.get(), Options());
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    link_a_ = std::move(a).value();
    ASSERT_TRUE(RunUntil([&] { return hub_->stats().backend.up; },
                         milliseconds(15000)));
    if (!with_b) return;
    http_b_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_b_, "127.0.0.1", 0);
    ASSERT_NE(bound, nullptr);
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&sa), &len);
    port_b_ = ntohs(sa.sin_port);
    hub_b_ = Hub::Create(base_, {}).value();
    ASSERT_TRUE(
        evhttp::Mount(http_b_, "/events", hub_b_.get(), {}).Release().ok());
    auto b = kafka::Attach(hub_b_.get(), Options(b_cluster));
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    link_b_ = std::move(b).value();
    ASSERT_TRUE(RunUntil([&] { return hub_b_->stats().backend.up; },
                         milliseconds(15000)));
  }

  // PublishOn publishes through `hub` and waits for the callback.
  Result<std::string> PublishOn(Hub* hub, const std::string& topic,
                                const std::string& type,
                                const std::string& data,
                                milliseconds timeout = milliseconds(15000)) {
    auto got = std::make_shared<std::optional<Result<std::string>>>();
    Status s = hub->Publish(topic, {type, data}, [got](Result<std::string> r) {
      *got = std::move(r);
    });
    if (!s.ok()) return s;
    if (!RunUntil([&] { return got->has_value(); }, timeout))
      return InternalError("no publish callback");
    return **got;
  }

  // OutOfRange makes the broker answer the next Fetch request with
  // OFFSET_OUT_OF_RANGE until `done` (a response the consumer drops as
  // outdated, after it restarted a partition, does not count), at most ten
  // times; an error left over meets a partition whose offset is there, and
  // changes nothing.
  ::testing::AssertionResult OutOfRange(const std::function<bool()>& done) {
    for (int i = 0; i < 10; ++i) {
      std::string ok = cluster_.Command("fetcherror");
      if (ok != "ok") return ::testing::AssertionFailure() << ok;
      if (RunUntil(done, milliseconds(1500)))
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "never told";
  }

  // Live waits until the client's stream has begun: on a Kafka node that
  // is after every topic's partition is assigned at its tail.
  ::testing::AssertionResult Live(TestClient& c) {
    if (!RunUntil([&] { return c.has_head(); }, milliseconds(15000)))
      return ::testing::AssertionFailure() << "no response head";
    if (c.status() != 200)
      return ::testing::AssertionFailure() << "status " << c.status();
    return ::testing::AssertionSuccess();
  }

  MockCluster cluster_;
  std::unique_ptr<kafka::Link> link_a_;
  struct ::evhttp* http_b_ = nullptr;
  std::unique_ptr<Hub> hub_b_;
  std::unique_ptr<kafka::Link> link_b_;
  int port_b_ = 0;
};

TEST(KafkaTopics, SplitTopicNamesPartitions) {
  std::string t;
  int32_t p = 0;
  ASSERT_TRUE(kafka::SplitTopic("orders@2", &t, &p).ok());
  EXPECT_EQ(t, "orders");
  EXPECT_EQ(p, 2);
  ASSERT_TRUE(kafka::SplitTopic("orders", &t, &p).ok());
  EXPECT_EQ(p, -1);
  EXPECT_FALSE(kafka::SplitTopic("orders@", &t, &p).ok());
  EXPECT_FALSE(kafka::SplitTopic("orders@x", &t, &p).ok());
  EXPECT_FALSE(kafka::SplitTopic("@1", &t, &p).ok());
  kafka::KafkaOptions o;
  EXPECT_FALSE(kafka::Validate(o).ok());  // no broker
  o.brokers = {"127.0.0.1:9092"};
  EXPECT_TRUE(kafka::Validate(o).ok());
  o.brokers = {"127.0.0.1"};
  EXPECT_FALSE(kafka::Validate(o).ok());
  o.brokers = {"127.0.0.1:9092"};
  o.settings = {{"no.such.setting", "1"}};
  Status s = kafka::Validate(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no.such.setting"), std::string::npos)
      << s.message();
}

TEST_F(KafkaTest, EvsseAndKcatRecordsReachSubscribersWithPartitionOffsetIds) {
  ASSERT_EQ(cluster_.Command("create t 2"), "ok");
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=t@0&topic=t@1");
  ASSERT_TRUE(Live(*c));
  // A bare topic is every partition of it.
  auto bare = Subscribe(port_, "/events?topic=t");
  ASSERT_TRUE(Live(*bare));

  // Through evsse: the ids name partition (epoch p+1) and offset (+1).
  Result<std::string> id = PublishOn(hub_.get(), "t@0", "n", "a0");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "1.1");
  id = PublishOn(hub_.get(), "t@1", "n", "b0");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "2.1");
  TestClient post(port_, PostRequest("/publish?topic=t@1&event=n", "b1"));
  ASSERT_TRUE(RunUntil([&] { return post.closed(); }));
  EXPECT_EQ(post.status(), 200) << post.body();
  EXPECT_EQ(IdOf(post.body()), "2.2");

  // A topic the store cannot name: 400 with the reason, not a 503.
  TestClient bad(port_, PostRequest("/publish?topic=t@x", "z"));
  ASSERT_TRUE(RunUntil([&] { return bad.closed(); }));
  EXPECT_EQ(bad.status(), 400) << bad.body();
  EXPECT_NE(bad.body().find("partition number"), std::string::npos)
      << bad.body();

  // With kcat: the type from the sse-event header, else "message"; data
  // that is not UTF-8 and a type with CR are skipped.
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "t", 0, {"sse-event=k"}, {"a1"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "t", 0, {}, {"a2"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "t", 0, {}, {"bad \xff data"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "t", 0, {"sse-event=x\ry"}, {"a3"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "t", 0, {"sse-event=k"}, {"a4"}));

  ASSERT_TRUE(RunUntil([&] { return c->events.size() >= 6; }));
  RunFor(milliseconds(100));
  EXPECT_EQ(ByPrefix(*c, "a"),
            (std::vector<std::string>{"a0", "a1", "a2", "a4"}));
  EXPECT_EQ(ByPrefix(*c, "b"), (std::vector<std::string>{"b0", "b1"}));
  ASSERT_EQ(c->events.size(), 6u);
  std::map<std::string, std::string> type_of;
  for (const auto& e : c->events) type_of[e.data] = e.type;
  EXPECT_EQ(type_of["a1"], "k");
  EXPECT_EQ(type_of["a2"], "message");
  // The connection's cursor: partition 0 up to offset 5 (a4), 1 up to 1.
  EXPECT_EQ(c->last_event_id(), "1.6,2.2");
  ASSERT_TRUE(RunUntil([&] { return bare->events.size() == 6; }));
  EXPECT_EQ(ByPrefix(*bare, "a"),
            (std::vector<std::string>{"a0", "a1", "a2", "a4"}));
  EXPECT_EQ(ByPrefix(*bare, "b"), (std::vector<std::string>{"b0", "b1"}));
  EXPECT_EQ(bare->last_event_id(), "1.6,2.2");
  // Publishing to the bare name: librdkafka's partitioner picks the
  // partition, and the id names it.
  id = PublishOn(hub_.get(), "t", "n", "a5");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_THAT(*id, ::testing::AnyOf("1.7", "2.3"));
  ASSERT_TRUE(RunUntil(
      [&] { return bare->events.size() == 7 && c->events.size() == 7; }));
  EXPECT_EQ(bare->events.back().data, "a5");
  EXPECT_EQ(c->last_event_id(), *id == "1.7" ? "1.7,2.2" : "1.6,2.3");
  // Each skipped record was counted once (two names read partition 0).
  EXPECT_EQ(link_a_->stats().records_skipped, 2u);
  EXPECT_FALSE(c->closed());
}

TEST_F(KafkaTest, ResumeOnAnotherNodeFromACompositeCursor) {
  ASSERT_EQ(cluster_.Command("create t 2"), "ok");
  ASSERT_EQ(cluster_.Command("create u 1"), "ok");
  StartNodes(true);
  const std::string target = "/events?topic=t@0&topic=t@1&topic=u@0";
  auto c = Subscribe(port_, target);
  ASSERT_TRUE(Live(*c));
  // Interleaved across partitions and topics, as records arrive.
  const std::vector<std::pair<std::string, std::string>> first = {
      {"t@0", "p0-1"}, {"u@0", "q0-1"}, {"t@1", "p1-1"}, {"t@0", "p0-2"},
      {"t@1", "p1-2"}, {"u@0", "q0-2"}, {"t@0", "p0-3"}};
  for (const auto& [topic, data] : first)
    ASSERT_TRUE(PublishOn(hub_.get(), topic, "n", data).ok());
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == first.size(); }));
  std::vector<std::string> ids = c->ids();
  const std::string last = c->last_event_id();
  const std::string mid = ids[3];
  std::vector<std::string> seen = c->datas();
  c->Close();

  // Missed while away, some through kcat.
  ASSERT_TRUE(PublishOn(hub_.get(), "t@1", "n", "p1-3").ok());
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "u", 0, {"sse-event=n"}, {"q0-3"}));
  ASSERT_TRUE(PublishOn(hub_.get(), "t@0", "n", "p0-4").ok());

  // Node B never saw these topics: it reads them from Kafka, one read
  // shared by the sessions resuming the same partition.
  auto r1 = Subscribe(port_b_, target, last);
  auto r2 = Subscribe(port_b_, target, last);
  auto r3 = Subscribe(port_b_, target, mid);
  ASSERT_TRUE(RunUntil([&] {
    return r1->events.size() == 3 && r2->events.size() == 3 &&
           r3->events.size() == 6;
  }));
  RunFor(milliseconds(100));
  for (TestClient* r : {r1.get(), r2.get()}) {
    EXPECT_EQ(ByPrefix(*r, "p0"), (std::vector<std::string>{"p0-4"}));
    EXPECT_EQ(ByPrefix(*r, "p1"), (std::vector<std::string>{"p1-3"}));
    EXPECT_EQ(ByPrefix(*r, "q0"), (std::vector<std::string>{"q0-3"}));
    EXPECT_EQ(r->last_event_id(), "1.4,2.3,1.3");
  }
  // From the middle (the cursor after the 4th event this client saw, in
  // its arrival order): per partition, exactly what it saw after that
  // event, then what it missed.
  const std::map<std::string, std::vector<std::string>> missed = {
      {"p0", {"p0-4"}}, {"p1", {"p1-3"}}, {"q0", {"q0-3"}}};
  for (const auto& [prefix, tail] : missed) {
    std::vector<std::string> want;
    for (size_t i = 4; i < seen.size(); ++i)
      if (seen[i].rfind(prefix, 0) == 0) want.push_back(seen[i]);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(ByPrefix(*r3, prefix), want) << prefix;
  }
  EXPECT_EQ(r3->last_event_id(), "1.4,2.3,1.3");
  HubStats sb = hub_b_->stats();
  EXPECT_GT(sb.replay_page_requests, 0u);
  EXPECT_LT(sb.backend.replay_fetches, sb.replay_page_requests)
      << "no replay read was shared";

  // Then live on B, for all of them.
  ASSERT_TRUE(PublishOn(hub_b_.get(), "u@0", "n", "q0-4").ok());
  ASSERT_TRUE(RunUntil([&] {
    return r1->events.size() == 4 && r2->events.size() == 4 &&
           r3->events.size() == 7;
  }));
  EXPECT_EQ(r3->events.back().data, "q0-4");
  EXPECT_EQ(r3->last_event_id(), "1.4,2.3,1.4");
}

// More than one replay batch (replay_batch_bytes, 64 KiB) and more than one
// fetch page (1,000 records) for a resume on a node that never saw them.
TEST_F(KafkaTest, LongReplayOnAnotherNodeIsComplete) {
  ASSERT_EQ(cluster_.Command("create big 1"), "ok");
  StartNodes(true);
  const std::string pad(200, 'x');
  std::string first;
  for (int i = 0; i < 1500; ++i) {
    auto done = std::make_shared<bool>(false);
    ASSERT_TRUE(hub_->Publish("big", {"n", std::to_string(i) + pad},
                              [done](Result<std::string>) { *done = true; })
                    .ok());
    if (i == 0) {
      ASSERT_TRUE(RunUntil([&] { return *done; }));
    }
  }
  ASSERT_TRUE(PublishOn(hub_.get(), "big", "n", "last").ok());
  auto r = Subscribe(port_b_, "/events?topic=big", "1.1");
  ASSERT_TRUE(
      RunUntil([&] { return r->events.size() == 1500; }, milliseconds(20000)))
      << r->events.size();
  for (int i = 1; i < 1500; ++i)
    ASSERT_EQ(r->events[i - 1].data, std::to_string(i) + pad) << i;
  EXPECT_EQ(r->events.back().data, "last");
  EXPECT_EQ(r->last_event_id(), "1.1501");
  RunFor(milliseconds(50));
  EXPECT_EQ(r->events.size(), 1500u);
}

TEST_F(KafkaTest, BrokerAndLeaderDownAndBackWhilePublishing) {
  ASSERT_EQ(cluster_.Command("create t 1"), "ok");
  ASSERT_EQ(cluster_.Command("leader t 0 1"), "ok");
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=t@0");
  ASSERT_TRUE(Live(*c));
  std::vector<std::string> want;
  for (int i = 0; i < 5; ++i) {
    want.push_back("r" + std::to_string(i));
    ASSERT_TRUE(PublishOn(hub_.get(), "t@0", "n", want.back()).ok());
  }
  // The leader's broker goes down with publishes in flight; the leader
  // moves, then the broker comes back.
  ASSERT_EQ(cluster_.Command("down 1"), "ok");
  // Shared: a callback may outlive this body (failures end it early; the
  // link, destroyed in TearDown, cancels what is pending).
  auto done_ptr =
      std::make_shared<std::vector<std::optional<Result<std::string>>>>(10);
  auto& done = *done_ptr;
  for (int i = 5; i < 15; ++i) {
    want.push_back("r" + std::to_string(i));
    ASSERT_TRUE(hub_->Publish("t@0", {"n", want.back()},
                              [done_ptr, i](Result<std::string> r) {
                                (*done_ptr)[i - 5] = std::move(r);
                              })
                    .ok());
    if (i == 9) {
      RunFor(milliseconds(200));
      ASSERT_EQ(cluster_.Command("leader t 0 2"), "ok");
    }
  }
  RunFor(milliseconds(300));
  ASSERT_EQ(cluster_.Command("up 1"), "ok");
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& d : done)
          if (!d) return false;
        return true;
      },
      milliseconds(20000)));
  for (auto& d : done) ASSERT_TRUE(d->ok()) << d->status().ToString();
  // A second leader move with the stream live.
  ASSERT_EQ(cluster_.Command("leader t 0 3"), "ok");
  for (int i = 15; i < 20; ++i) {
    want.push_back("r" + std::to_string(i));
    ASSERT_TRUE(PublishOn(hub_.get(), "t@0", "n", want.back()).ok());
  }
  ASSERT_TRUE(RunUntil([&] { return c->events.size() >= want.size(); },
                       milliseconds(20000)));
  RunFor(milliseconds(100));
  std::vector<std::string> got;
  for (const auto& e : c->events) got.push_back(e.data);
  EXPECT_EQ(got, want);  // each once, in order
  EXPECT_EQ(c->last_event_id(), "1.20");
  EXPECT_FALSE(c->closed());
}

TEST_F(KafkaTest, WholeClusterDownPublishesFailThenEverythingResumes) {
  ASSERT_EQ(cluster_.Command("create t 1"), "ok");
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=t@0");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(PublishOn(hub_.get(), "t@0", "n", "before").ok());
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(cluster_.Command("down " + std::to_string(b)), "ok");
  // A publish taken while the cluster goes away: not acknowledged within
  // publish_timeout (2 s here), so 503 (not stored) or 504 (maybe stored).
  Result<std::string> lost =
      PublishOn(hub_.get(), "t@0", "n", "lost?", milliseconds(20000));
  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(lost.status().code() == StatusCode::kUnavailable ||
              lost.status().code() == StatusCode::kUnknown)
      << lost.status().ToString();
  ASSERT_TRUE(
      RunUntil([&] { return !hub_->stats().backend.up; }, milliseconds(20000)));
  // Down: refused at once, not stored.
  Result<std::string> refused = PublishOn(hub_.get(), "t@0", "n", "refused");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(c->closed());  // the subscriber stays, with heartbeats

  for (int b = 1; b <= 3; ++b)
    ASSERT_EQ(cluster_.Command("up " + std::to_string(b)), "ok");
  ASSERT_TRUE(
      RunUntil([&] { return hub_->stats().backend.up; }, milliseconds(20000)));
  // 503 means not stored: a publisher retries it (the leader's broker may
  // still be reconnecting when the first one answers).
  Result<std::string> after = UnavailableError("not tried");
  for (int i = 0; i < 5 && !after.ok(); ++i) {
    after = PublishOn(hub_.get(), "t@0", "n", "after");
    if (!after.ok() && after.status().code() != StatusCode::kUnavailable) break;
  }
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_TRUE(RunUntil(
      [&] { return !c->events.empty() && c->events.back().data == "after"; },
      milliseconds(20000)));
  std::vector<std::string> got = c->datas();
  // "lost?" is there (once) only if Kafka had it after all.
  std::vector<std::string> want = {"before", "after"};
  if (got.size() == 3) want = {"before", "lost?", "after"};
  EXPECT_EQ(got, want);
  EXPECT_FALSE(c->closed());
}

TEST_F(KafkaTest, CursorOlderThanTheLogStartGetsTheGap) {
  ASSERT_EQ(cluster_.Command("create r 1"), "ok");
  StartNodes(true);
  auto c = Subscribe(port_, "/events?topic=r@0");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(PublishOn(hub_.get(), "r@0", "n", "old-1").ok());
  ASSERT_TRUE(PublishOn(hub_.get(), "r@0", "n", "old-2").ok());
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  const std::string cursor = c->last_event_id();
  EXPECT_EQ(cursor, "1.2");
  c->Close();
  RunFor(milliseconds(50));
  // The mock keeps about 5 MiB per partition: 8 MiB of filler moves the
  // log start past the cursor.
  ASSERT_EQ(cluster_.Command("fill r 0 8"), "ok");
  std::string wm = cluster_.Command("watermarks r 0");
  ASSERT_EQ(wm.rfind("ok ", 0), 0u) << wm;
  long lo = std::stol(wm.substr(3));
  ASSERT_GT(lo, 2) << "the mock did not trim: " << wm;

  auto r = Subscribe(port_b_, "/events?topic=r@0", cursor);
  ASSERT_TRUE(
      RunUntil([&] { return !r->events.empty(); }, milliseconds(15000)));
  EXPECT_EQ(r->events[0].type, "gap") << r->events[0].data;
  EXPECT_EQ(hub_b_->stats().gaps, 1u);
}

TEST_F(KafkaTest, PartitionCreatedAfterItsSubscriberIsReadFromItsStart) {
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=late@1");
  ASSERT_TRUE(Live(*c));
  // The mock may have made the topic when it was first asked about.
  std::string made = cluster_.Command("create late 2");
  EXPECT_TRUE(made == "ok" || made.find("exists") != std::string::npos) << made;
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "late", 1, {"sse-event=n"},
                   {"first", "second"}));
  ASSERT_TRUE(
      RunUntil([&] { return c->events.size() == 2; }, milliseconds(15000)));
  EXPECT_EQ(c->events[0].data, "first");
  EXPECT_EQ(c->events[0].last_event_id, "2.1");
  EXPECT_EQ(c->events[1].last_event_id, "2.2");
}

// A bare topic follows every partition (issue 18's mapping): records of
// each partition, a composite cursor with one offset per partition, resume
// on another node (stream and poll) with nothing lost or repeated, and
// several topics on one connection.
TEST_F(KafkaTest, BareTopicFollowsEveryPartitionAndResumesOnAnotherNode) {
  ASSERT_EQ(cluster_.Command("create o 3"), "ok");
  ASSERT_EQ(cluster_.Command("create u 1"), "ok");
  StartNodes(true);
  auto c = Subscribe(port_, "/events?topic=o");
  auto two = Subscribe(port_, "/events?topic=u&topic=o");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(Live(*two));
  // Produced one after the other; partitions are fetched independently,
  // so the node's interleaving may differ.
  const std::vector<std::pair<int, std::string>> records = {
      {2, "p2-0"}, {0, "p0-1"}, {1, "p1-2"}, {0, "p0-3"}};
  for (const auto& [p, data] : records)
    ASSERT_TRUE(Kcat(cluster_.bootstrap(), "o", p, {"sse-event=n"}, {data}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "u", 0, {}, {"q0"}));
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 4; }));
  ASSERT_TRUE(RunUntil([&] { return two->events.size() == 5; }));
  EXPECT_EQ(ByPrefix(*c, "p0"), (std::vector<std::string>{"p0-1", "p0-3"}));
  // One position per partition, in partition order.
  EXPECT_EQ(c->last_event_id(), "1.2,2.1,3.1");
  EXPECT_EQ(two->last_event_id(), "1.1,1.2,2.1,3.1");
  const std::string mid = c->events[1].last_event_id;
  const std::vector<std::string> seen = c->datas();
  const std::string last = c->last_event_id();
  const std::string two_last = two->last_event_id();
  c->Close();
  two->Close();

  // Missed while away.
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "o", 1, {}, {"p1-x"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "o", 2, {}, {"p2-x"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "u", 0, {}, {"q1"}));

  // Node B never saw topic o: it reads each partition from Kafka.
  auto r = Subscribe(port_b_, "/events?topic=o", last);
  auto rm = Subscribe(port_b_, "/events?topic=o", mid);
  auto r2 = Subscribe(port_b_, "/events?topic=u&topic=o", two_last);
  ASSERT_TRUE(RunUntil([&] {
    return r->events.size() == 2 && rm->events.size() == 4 &&
           r2->events.size() == 3;
  }));
  RunFor(milliseconds(100));
  EXPECT_EQ(ByPrefix(*r, "p1"), (std::vector<std::string>{"p1-x"}));
  EXPECT_EQ(ByPrefix(*r, "p2"), (std::vector<std::string>{"p2-x"}));
  EXPECT_EQ(r->events.size(), 2u);
  EXPECT_EQ(r->last_event_id(), "1.2,2.2,3.2");
  // From the middle (after the 2nd event in this node's arrival order):
  // per partition, what the client saw after it, then what it missed;
  // nothing twice.
  const std::map<std::string, std::vector<std::string>> missed = {
      {"p0", {}}, {"p1", {"p1-x"}}, {"p2", {"p2-x"}}};
  std::multiset<std::string> from_mid;
  for (const auto& [prefix, tail] : missed) {
    std::vector<std::string> want;
    for (size_t i = 2; i < seen.size(); ++i)
      if (seen[i].rfind(prefix, 0) == 0) want.push_back(seen[i]);
    want.insert(want.end(), tail.begin(), tail.end());
    EXPECT_EQ(ByPrefix(*rm, prefix), want) << prefix;
    from_mid.insert(want.begin(), want.end());
  }
  EXPECT_EQ(rm->events.size(), 4u);
  EXPECT_EQ(ByPrefix(*r2, "q"), (std::vector<std::string>{"q1"}));
  EXPECT_EQ(r2->last_event_id(), "1.2,1.2,2.2,3.2");

  // The poll transport expands alike and answers from the same cursor.
  TestClient poll(port_b_, "GET /events?transport=poll&topic=o&lastEventId=" +
                               mid + " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] {
    return poll.closed() ||
           (poll.body().size() > 2 && poll.body().back() == '\n');
  }));
  ASSERT_EQ(poll.status(), 200) << poll.body();
  auto j = nlohmann::json::parse(poll.body(), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << poll.body();
  std::multiset<std::string> got;
  for (auto& e : j["events"]) got.insert(e["data"].get<std::string>());
  EXPECT_EQ(got, from_mid);
  EXPECT_EQ(j["last_event_id"], "1.2,2.2,3.2");

  // A cursor that cannot belong to the expanded topics (u has no
  // partition 1): 400.
  auto bad = Subscribe(port_b_, "/events?topic=u&topic=o", "2.1,1.1");
  ASSERT_TRUE(RunUntil([&] { return bad->closed() || bad->has_head(); }));
  EXPECT_EQ(bad->status(), 400);
}

// Partitions added to a topic after a client's cursor: a reconnect (on any
// node) follows them from their start, and the old ones after the cursor.
TEST_F(KafkaTest, BareTopicReconnectReadsPartitionsAddedSinceFromTheirStart) {
  ASSERT_EQ(cluster_.Command("create g 1"), "ok");
  StartNodes(true);
  auto c = Subscribe(port_, "/events?topic=g");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "g", 0, {}, {"g0-0"}));
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  const std::string cursor = c->last_event_id();
  EXPECT_EQ(cursor, "1.1");
  c->Close();
  // The 2.0.2 mock cannot add partitions to a topic: a cursor of a
  // one-partition topic resumed on a three-partition topic of that name
  // stands for it (the new partitions come after the cursor's entries).
  ASSERT_EQ(cluster_.Command("create h 3"), "ok");
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "h", 0, {}, {"h0-0", "h0-1"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "h", 1, {}, {"h1-0"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "h", 2, {}, {"h2-0"}));
  auto r = Subscribe(port_b_, "/events?topic=h", cursor);
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 3; }))
      << r->status() << " " << r->body();
  RunFor(milliseconds(100));
  EXPECT_EQ(ByPrefix(*r, "h0"), (std::vector<std::string>{"h0-1"}));
  EXPECT_EQ(ByPrefix(*r, "h1"), (std::vector<std::string>{"h1-0"}));
  EXPECT_EQ(ByPrefix(*r, "h2"), (std::vector<std::string>{"h2-0"}));
  EXPECT_EQ(r->events.size(), 3u);
  EXPECT_EQ(r->last_event_id(), "1.2,2.1,3.1");

  // More partitions than max_topics_per_connection (8): 400 naming it.
  ASSERT_EQ(cluster_.Command("create wide 9"), "ok");
  auto wide = Subscribe(port_b_, "/events?topic=wide");
  ASSERT_TRUE(RunUntil([&] { return wide->has_head(); }));
  EXPECT_EQ(wide->status(), 400);
  EXPECT_NE(wide->body().find("max_topics_per_connection is 8"),
            std::string::npos)
      << wide->body();
}

// A cursor past a partition's end names an offset of an earlier topic of
// that name (deleted and created again: its offsets began anew at 0): the
// client gets the gap event (reason "unknown"), never a silent wait for
// offsets that would come much later. The 2.0.2 mock cannot delete a
// topic, so a second mock cluster stands in for the topic created again:
// node A reads the first topic x, node B the second one.
TEST_F(KafkaTest, CursorPastThePartitionEndGetsTheGap) {
  MockCluster again;
  ASSERT_TRUE(again.Start());
  ASSERT_EQ(cluster_.Command("create x 1"), "ok");
  ASSERT_EQ(again.Command("create x 1"), "ok");
  ASSERT_EQ(again.Command("create y 1"), "ok");
  StartNodes(true, &again);
  auto c = Subscribe(port_, "/events?topic=x");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "x", 0, {},
                   {"old-0", "old-1", "old-2", "old-3", "old-4"}));
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 5; }));
  const std::string cursor = c->last_event_id();
  ASSERT_EQ(cursor, "1.5");
  c->Close();

  // The new x has three records, and node B follows it live: its history
  // ends before the cursor.
  auto live = Subscribe(port_b_, "/events?topic=x");
  ASSERT_TRUE(Live(*live));
  ASSERT_TRUE(Kcat(again.bootstrap(), "x", 0, {}, {"new-0", "new-1", "new-2"}));
  ASSERT_TRUE(RunUntil([&] { return live->events.size() == 3; }));
  auto r = Subscribe(port_b_, "/events?topic=x", cursor);
  ASSERT_TRUE(
      RunUntil([&] { return !r->events.empty(); }, milliseconds(15000)));
  EXPECT_EQ(r->events[0].type, "gap");
  auto gap = nlohmann::json::parse(r->events[0].data, nullptr, false);
  ASSERT_FALSE(gap.is_discarded()) << r->events[0].data;
  EXPECT_EQ(gap["reason"], "unknown");
  EXPECT_EQ(gap["topics"], nlohmann::json::array({"x@0"}));
  EXPECT_EQ(r->events[0].last_event_id, "1.3");  // the new topic's tail
  ASSERT_TRUE(Kcat(again.bootstrap(), "x", 0, {}, {"new-3"}));
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 2; }));
  EXPECT_EQ(r->events[1].data, "new-3");
  EXPECT_EQ(r->events[1].last_event_id, "1.4");
  EXPECT_EQ(live->events.size(), 4u);

  // A topic the node does not follow yet: the same.
  ASSERT_TRUE(Kcat(again.bootstrap(), "y", 0, {}, {"y-0"}));
  auto ry = Subscribe(port_b_, "/events?topic=y", "1.1000");
  ASSERT_TRUE(
      RunUntil([&] { return !ry->events.empty(); }, milliseconds(15000)))
      << ry->status() << " " << ry->body();
  EXPECT_EQ(ry->events[0].type, "gap");
  EXPECT_EQ(ry->events[0].last_event_id, "1.1");
  // A cursor within the partition is no gap: the resume reads on after it.
  ASSERT_TRUE(Kcat(again.bootstrap(), "y", 0, {}, {"y-1", "y-2"}));
  auto rz = Subscribe(port_b_, "/events?topic=y", "1.2");
  ASSERT_TRUE(RunUntil([&] { return !rz->events.empty(); }));
  EXPECT_EQ(rz->events[0].data, "y-2");
  EXPECT_EQ(hub_b_->stats().gaps, 2u);
}

// RecordingSink: what a Kafka link tells its Hub, with the position the
// node holds (LastPosition) set by the test.
class RecordingSink : public BackendSink {
 public:
  struct Call {
    std::string topic;
    uint64_t epoch;
    pubsub::Position from;
  };
  void Deliver(const std::string& topic, uint64_t,
               const StoredEvent& e) override {
    delivered.push_back(topic + " " + std::to_string(e.position.major) + " " +
                        e.data.substr(0, 16));
  }
  void Synced(const std::string& topic, uint64_t epoch,
              pubsub::Position from) override {
    synced.push_back({topic, epoch, from});
  }
  pubsub::Position LastPosition(const std::string&, uint64_t* epoch) override {
    *epoch = 1;
    return held;
  }
  void LinkChanged(bool u) override { up = u; }
  void Continued(const std::string& topic, uint64_t, uint64_t,
                 pubsub::Position) override {
    ADD_FAILURE() << "Continued(" << topic << ") from the Kafka link";
  }
  void Restarted(const std::string& topic, uint64_t epoch,
                 pubsub::Position from) override {
    restarted.push_back({topic, epoch, from});
  }
  void ExpansionChanged(const std::string& topic) override {
    regrouped.push_back(topic);
  }
  bool Has(const std::string& line) const {
    return std::find(delivered.begin(), delivered.end(), line) !=
           delivered.end();
  }

  bool up = false;
  pubsub::Position held;
  std::vector<std::string> delivered;  // "topic position data"
  std::vector<Call> synced, restarted;
  std::vector<std::string> regrouped;
};

// A node following a partition live learns when the partition no longer
// holds its position: its log ends before it (the topic was deleted and
// created again) or starts after it (retention removed records the node
// had not read). It tells the Hub (Restarted: subscribers end and resume
// into the gap event; Synced past the Hub's tail: the same) and reads on.
// The mock can neither delete a topic nor make a live consumer fall behind
// its log start: the sink's held position stands for the node's, and the
// mock's injected OFFSET_OUT_OF_RANGE for what the broker answers then.
TEST_F(KafkaTest, LiveNodeToldWhenItsPartitionStartsOverOrIsTrimmed) {
  ASSERT_EQ(cluster_.Command("create s 1"), "ok");
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "s", 0, {}, {"s-0", "s-1", "s-2"}));
  StartServer();
  RecordingSink sink;
  kafka::LinkEnv env;
  env.base = base_;
  auto made = kafka::MakeLink(env, Options());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::unique_ptr<kafka::BackendLink> link = std::move(made).value();
  link->Start(&sink);
  ASSERT_TRUE(RunUntil([&] { return sink.up; }, milliseconds(15000)));
  link->Watch("s@0");
  ASSERT_TRUE(RunUntil([&] { return !sink.synced.empty(); }));
  EXPECT_EQ(sink.synced[0].from, (pubsub::Position{3, 0}));

  // Started over: the node had read 50 offsets of the earlier topic.
  sink.held = pubsub::Position{50, 0};
  ASSERT_TRUE(OutOfRange([&] { return !sink.restarted.empty(); }));
  EXPECT_EQ(sink.restarted[0].topic, "s@0");
  EXPECT_EQ(sink.restarted[0].epoch, 1u);
  EXPECT_EQ(sink.restarted[0].from, (pubsub::Position{3, 0}));
  sink.held = pubsub::Position{3, 0};
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "s", 0, {}, {"s-3"}));
  ASSERT_TRUE(RunUntil([&] { return sink.Has("s@0 4 s-3"); }));

  // Trimmed: the log start passed offsets the node had not read.
  ASSERT_EQ(cluster_.Command("fill s 0 8"), "ok");
  std::string wm = cluster_.Command("watermarks s 0");
  ASSERT_EQ(wm.rfind("ok ", 0), 0u) << wm;
  uint64_t lo = std::stoull(wm.substr(3));
  ASSERT_GT(lo, 4u) << "the mock did not trim: " << wm;
  sink.held = pubsub::Position{4, 0};
  size_t before = sink.synced.size();
  ASSERT_TRUE(OutOfRange([&] { return sink.synced.size() > before; }));
  EXPECT_EQ(sink.synced.back().topic, "s@0");
  EXPECT_GE(sink.synced.back().from, (pubsub::Position{lo, 0}));
  EXPECT_GE(sink.restarted.size(), 1u);
  const size_t restarts = sink.restarted.size();

  // Nothing lost: the position is still there (a broker's hiccup).
  sink.held = sink.synced.back().from;
  before = sink.synced.size();
  ASSERT_EQ(cluster_.Command("fetcherror"), "ok");
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "s", 0, {}, {"s-last"}));
  ASSERT_TRUE(RunUntil([&] {
    return std::any_of(sink.delivered.begin(), sink.delivered.end(),
                       [](const std::string& d) {
                         return d.find(" s-last") != std::string::npos;
                       });
  }));
  EXPECT_EQ(sink.synced.size(), before);
  EXPECT_EQ(sink.restarted.size(), restarts);
  link.reset();
}

// Partitions added to a topic while a bare-topic stream is open: the node
// sees the count grow within metadata_refresh and ends that stream cleanly,
// its cursor sent as a last id; the reconnect (by hand here, as an
// EventSource does by itself, on any node) follows every partition, the new
// ones from their first record, nothing lost or repeated. A stream that
// named its partition is left alone. The 2.0.2 mock cannot add partitions
// to a topic (and makes a topic, with 4 partitions, the first time a client
// asks about it): a topic hidden from metadata requests (the mock answers
// "unknown topic", so a bare subscriber follows its partition 0, read once
// it exists) and then shown grows from one partition to four.
TEST_F(KafkaTest,
       PartitionsAddedWhileConnectedEndTheStreamAndResumeFollowsThem) {
  ASSERT_EQ(cluster_.Command("hide grow"), "ok");
  StartNodes(true);
  auto c = Subscribe(port_, "/events?topic=grow");
  auto named = Subscribe(port_, "/events?topic=grow@0");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(Live(*named));
  EXPECT_EQ(c->events.size(), 0u);
  ASSERT_EQ(cluster_.Command("show grow"), "ok");
  const std::string empty_tail = ",4.0";  // partition 3 stays empty
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "grow", 0, {}, {"g0-0"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "grow", 1, {}, {"g1-0"}));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "grow", 2, {}, {"g2-0", "g2-1"}));
  ASSERT_TRUE(RunUntil([&] { return c->chunked_end(); }, milliseconds(15000)))
      << c->body();
  const std::string cursor = c->last_event_id();
  EXPECT_TRUE(cursor == "1.1" || cursor == "1.0") << cursor;
  ASSERT_TRUE(RunUntil([&] { return named->events.size() == 1; }));
  EXPECT_FALSE(named->chunked_end());

  auto r = Subscribe(port_b_, "/events?topic=grow", cursor);
  ASSERT_TRUE(RunUntil([&] {
    return ByPrefix(*r, "g1").size() == 1 && ByPrefix(*r, "g2").size() == 2;
  }));
  RunFor(milliseconds(100));
  std::vector<std::string> g0 = ByPrefix(*c, "g0");
  for (const std::string& d : ByPrefix(*r, "g0")) g0.push_back(d);
  EXPECT_EQ(g0, (std::vector<std::string>{"g0-0"}));
  EXPECT_EQ(r->last_event_id(), "1.1,2.1,3.2" + empty_tail);

  // Several topics on one connection: the cursor's partitions tell which
  // topic grew (u had one partition, grow now has three).
  ASSERT_EQ(cluster_.Command("create u 1"), "ok");
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "u", 0, {}, {"u-0"}));
  auto two = Subscribe(port_b_, "/events?topic=grow&topic=u", "1.0,1.0");
  ASSERT_TRUE(RunUntil([&] { return two->events.size() == 5; }))
      << two->status() << " " << two->body();
  EXPECT_EQ(two->last_event_id(), "1.1,2.1,3.2" + empty_tail + ",1.1");

  // A cursor of partitions the topic no longer has (created again with
  // fewer): they are dropped, the others resume.
  auto fewer = Subscribe(port_b_, "/events?topic=u", "1.0,2.4,3.4");
  ASSERT_TRUE(RunUntil([&] { return fewer->events.size() == 1; }))
      << fewer->status() << " " << fewer->body();
  EXPECT_EQ(fewer->events[0].data, "u-0");
  EXPECT_EQ(fewer->last_event_id(), "1.1");
}

// A topic the cluster answers for as unknown for a while (deleted, or a
// metadata hiccup) keeps the partition count the node knew: open streams
// go on, and a cursor resumed meanwhile keeps all its partitions (with
// fewer, its positions would be dropped and read again later).
TEST_F(KafkaTest, ATopicUnknownForAWhileKeepsItsPartitions) {
  ASSERT_EQ(cluster_.Command("create f 3"), "ok");
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=f");
  ASSERT_TRUE(Live(*c));
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "f", 2, {}, {"f2-0"}));
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  const std::string cursor = c->last_event_id();
  EXPECT_EQ(cursor, "1.0,2.0,3.1");
  ASSERT_EQ(cluster_.Command("hide f"), "ok");
  RunFor(milliseconds(1200));  // two metadata_refresh checks
  auto r = Subscribe(port_, "/events?topic=f", cursor);
  ASSERT_TRUE(Live(*r));
  ASSERT_EQ(cluster_.Command("show f"), "ok");
  ASSERT_TRUE(Kcat(cluster_.bootstrap(), "f", 1, {}, {"f1-0"}));
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 1; }));
  EXPECT_EQ(r->last_event_id(), "1.0,2.1,3.1");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  RunFor(milliseconds(1200));
  EXPECT_FALSE(c->chunked_end());
  EXPECT_FALSE(r->chunked_end());
}

// ---- Processes: the quick start (evhttp_hello --kafka) and evsse-alerts ----

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

// One lifetime rule (module/README.md): a Hub may go before its Kafka link.
// It detaches the store (Backend::HubGone): a publish in flight is answered
// once while the Hub exists, and the link, destroyed later, calls nothing.
TEST_F(KafkaTest, HubBeforeItsLink) {
  ASSERT_EQ(cluster_.Command("create t 1"), "ok");
  StartNodes(false);
  auto c = Subscribe(port_, "/events?topic=t@0");
  ASSERT_TRUE(Live(*c));
  int answered = 0;
  ASSERT_TRUE(
      hub_->Publish("t@0", {"n", "x"}, [&](Result<std::string>) { ++answered; })
          .ok());
  hub_.reset();
  EXPECT_EQ(answered, 1);
  EXPECT_TRUE(RunUntil([&] { return c->closed(); }));
  link_a_.reset();
  RunFor(milliseconds(50));
  EXPECT_EQ(answered, 1);
}

TEST(KafkaProcesses, QuickStartEvhttpHelloWithKcat) {
#ifndef EVSSE_HELLO_BIN
  GTEST_SKIP() << "evhttp_hello is not built (EVSSE_BUILD_EXAMPLES=OFF)";
#else
  std::signal(SIGPIPE, SIG_IGN);
  MockCluster cluster;
  ASSERT_TRUE(cluster.Start());
  ASSERT_EQ(cluster.Command("create news 2"), "ok");
  int port = FreePort();
  Child hello;
  ASSERT_TRUE(hello.Start({EVSSE_HELLO_BIN, "--port", std::to_string(port),
                           "--kafka", cluster.bootstrap()},
                          false));
  // Up once a publish through it is acknowledged by Kafka.
  PostReply first;
  ASSERT_TRUE(WaitUntil(
      [&] {
        first =
            BlockingPost(port, "/publish?topic=news@0&event=note", "one", 2000);
        return first.status == 200;
      },
      milliseconds(15000)))
      << first.status << " " << first.body;
  EXPECT_EQ(IdOf(first.body), "1.1");

  auto c = std::make_unique<TestClient>(
      port,
      "GET /events?topic=news@0&topic=news@1 HTTP/1.1\r\nHost: x\r\n"
      "Accept: text/event-stream\r\nLast-Event-ID: 1.0,2.0\r\n\r\n");
  ASSERT_TRUE(PollClients(
      {c.get()}, [&] { return c->events.size() == 1; }, milliseconds(15000)));
  EXPECT_EQ(c->events[0].data, "one");  // replayed from the cursor
  ASSERT_TRUE(
      Kcat(cluster.bootstrap(), "news", 1, {"sse-event=note"}, {"two"}));
  ASSERT_TRUE(PollClients(
      {c.get()}, [&] { return c->events.size() == 2; }, milliseconds(15000)));
  EXPECT_EQ(c->events[1].type, "note");
  EXPECT_EQ(c->events[1].data, "two");
  EXPECT_EQ(c->last_event_id(), "1.1,2.1");
  c.reset();
  EXPECT_EQ(hello.Stop(SIGTERM), 0);
#endif
}

TEST(KafkaProcesses, AlertsServerOnKafka) {
  if (kAlertsBin[0] == '\0')
    GTEST_SKIP() << "evsse-alerts is not built (EVSSE_BUILD_EXAMPLES=OFF)";
  std::signal(SIGPIPE, SIG_IGN);
  MockCluster cluster;
  ASSERT_TRUE(cluster.Start());
  ASSERT_EQ(cluster.Command("create ops 1"), "ok");
  const std::string conf =
      "shutdown_timeout 1s;\n"
      "server {\n"
      "  listen 127.0.0.1:0;\n"
      "  publish_token " +
      std::string(kAlertsToken) +
      ";\n"
      "  endpoint subscribe /alerts/stream { }\n"
      "  endpoint metrics /metrics { }\n"
      "  endpoint status /status { }\n"
      "}\n";
  AlertsServer node(conf, {}, {"--kafka", cluster.bootstrap()});
  ASSERT_TRUE(node.Started());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto m = ParseMetrics(CallServer(node.port(), "GET", "/metrics").body);
        return m["evsse_kafka_up"] == 1;
      },
      milliseconds(15000)))
      << node.Log();
  auto s = OpenStream(node.port(), "topic=ops");
  ASSERT_TRUE(PollClients(
      {s.get()}, [&] { return s->has_head(); }, milliseconds(15000)));
  ASSERT_EQ(s->status(), 200);
  Response r = PostAlertTo(node.port(), AlertJson("critical", "ops", "db"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["id"], "1.1");  // partition 0, offset 0
  ASSERT_TRUE(PollClients(
      {s.get()}, [&] { return !s->events.empty(); }, milliseconds(15000)));
  EXPECT_EQ(s->events[0].type, "critical");
  EXPECT_EQ(s->events[0].last_event_id, "1.1");
  Response status = CallServer(node.port(), "GET", "/status");
  EXPECT_EQ(status.json()["config"]["kafka"]["event_header"], "sse-event");
  // Both stores at once are refused.
  AlertsServer both(
      conf, {},
      {"--kafka", cluster.bootstrap(), "--redis", "127.0.0.1:1", "--check"});
  EXPECT_EQ(both.ExitStatus(), 1);
  EXPECT_THAT(both.Log(), ::testing::HasSubstr("one store"));
  // --check asks librdkafka about the pass-through settings.
  std::string bad_setting = conf;
  bad_setting.insert(bad_setting.rfind('}'),
                     "  kafka { brokers 127.0.0.1:1; "
                     "librdkafka no.such.thing 1; }\n");
  AlertsServer checked(bad_setting, {}, {"--check"});
  EXPECT_EQ(checked.ExitStatus(), 1);
  EXPECT_THAT(checked.Log(), ::testing::HasSubstr("no.such.thing"));
}

}  // namespace
}  // namespace evsse::testing
