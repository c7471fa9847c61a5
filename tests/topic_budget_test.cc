// How the Hub bounds its topics and their history (memory mode, both
// adapters): max_topics evicts the least recently used topic nobody
// subscribes to, history_max_bytes evicts history (idle topics first, then
// what every subscriber already has), topics with nothing left are
// forgotten, and a cursor into evicted history gets the gap event.
#include <optional>
#include <string>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

class TopicBudgetTest : public OnEveryAdapter<HttpFixture> {
 protected:
  std::string Id(uint64_t seq) const {
    std::string e;
    pubsub::AppendBase36(e, hub_->epoch());
    return e + "." + std::to_string(seq);
  }
  // TryPublish returns the id, or the error's message prefixed with "!".
  std::string TryPublish(const std::string& topic, const std::string& data) {
    std::optional<Result<std::string>> got;
    Status s = hub_->Publish(topic, {"", data},
                             [&got](Result<std::string> id) { got = id; });
    if (!s.ok()) return "!" + s.message();
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    if (!got) return "!no answer";
    return got->ok() ? got->value() : "!" + got->status().message();
  }
};

TEST_P(TopicBudgetTest, NewTopicsPastMaxTopicsEvictTheLeastRecentlyUsed) {
  HubOptions ho;
  ho.max_topics = 3;
  StartServer(ho);
  // One-shot topics, as with one topic per order: never refused.
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(TryPublish("order-" + std::to_string(i), "x")[0] != '!', true)
        << i;
  HubStats s = hub_->stats();
  EXPECT_EQ(s.topics, 3u);
  EXPECT_EQ(s.topics_evicted, 17u);
  EXPECT_EQ(s.history_events_evicted, 17u);
  EXPECT_EQ(s.history_events, 3u);
  // The newest three are kept and replay exactly; an evicted one gets a gap.
  // order-i went out as event i+1.
  auto kept =
      Get("/events?topic=order-19", "Last-Event-ID: " + Id(20) + "\r\n");
  auto gone = Get("/events?topic=order-2", "Last-Event-ID: " + Id(2) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return gone->events.size() == 1; }));
  EXPECT_EQ(gone->events[0].type, "gap");
  EXPECT_EQ(gone->events[0].data,
            R"({"topics":["order-2"],"reason":"expired"})");
  auto again =
      Get("/events?topic=order-19", "Last-Event-ID: " + Id(19) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return again->events.size() == 1; }));
  EXPECT_EQ(again->events[0].data, "x");
  EXPECT_EQ(again->events[0].last_event_id, Id(20));
  EXPECT_TRUE(kept->events.empty());
}

TEST_P(TopicBudgetTest, ARecentlyUsedTopicOutlivesOlderOnes) {
  HubOptions ho;
  ho.max_topics = 3;
  StartServer(ho);
  TryPublish("a", "a1");  // 1
  TryPublish("b", "b1");  // 2
  TryPublish("c", "c1");  // 3
  TryPublish("a", "a2");  // 4: a is now the most recently used
  TryPublish("d", "d1");  // 5: evicts b, the least recently used
  auto a = Get("/events?topic=a", "Last-Event-ID: " + Id(0) + "\r\n");
  auto b = Get("/events?topic=b", "Last-Event-ID: " + Id(1) + "\r\n");
  ASSERT_TRUE(
      RunUntil([&] { return a->events.size() == 2 && b->events.size() == 1; }));
  EXPECT_EQ(a->datas(), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(b->events[0].type, "gap");
}

TEST_P(TopicBudgetTest, SubscribedTopicsAreNeverEvictedAndFullTableRefuses) {
  HubOptions ho;
  ho.max_topics = 2;
  StartServer(ho);
  auto a = Get("/events?topic=a");
  auto b = Get("/events?topic=b");
  ASSERT_TRUE(RunUntil([&] { return a->retry && b->retry; }));
  std::string refused = TryPublish("c", "c1");
  EXPECT_EQ(refused.rfind("!too many topics in use (max_topics 2)", 0), 0u)
      << refused;
  EXPECT_EQ(hub_->stats().publish_errors, 1u);
  // The subscribers are unaffected and still get their events.
  TryPublish("a", "a1");
  ASSERT_TRUE(RunUntil([&] { return a->events.size() == 1; }));
  // Once b's subscriber leaves, b (no history) is forgotten and c fits.
  b->Close();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().topics == 1; }));
  EXPECT_EQ(TryPublish("c", "c1")[0], Id(0)[0]);
}

TEST_P(TopicBudgetTest, ByteBudgetEvictsIdleTopicsOldestFirst) {
  HubOptions ho;
  ho.max_event_bytes = 1000;
  ho.history_max_bytes = 20000;
  StartServer(ho);
  const std::string data(600, 'd');
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i)
    ids.push_back(TryPublish("t" + std::to_string(i), data));
  for (const std::string& id : ids) ASSERT_NE(id[0], '!') << id;
  HubStats s = hub_->stats();
  EXPECT_LE(s.history_bytes, ho.history_max_bytes);
  EXPECT_GT(s.history_bytes, ho.history_max_bytes / 2);
  EXPECT_GT(s.topics_evicted, 50u);
  EXPECT_EQ(s.topics, 100u - s.topics_evicted);
  EXPECT_EQ(s.history_events, s.topics);
  // The newest topics are the ones kept.
  auto newest = Get("/events?topic=t99", "Last-Event-ID: " + Id(99) + "\r\n");
  auto oldest = Get("/events?topic=t0", "Last-Event-ID: " + Id(0) + "\r\n");
  ASSERT_TRUE(RunUntil([&] {
    return newest->events.size() == 1 && oldest->events.size() == 1;
  }));
  EXPECT_EQ(newest->events[0].data, data);
  EXPECT_EQ(oldest->events[0].type, "gap");
}

TEST_P(TopicBudgetTest, SubscribersKeepWhatTheyAreOwed) {
  HubOptions ho;
  ho.max_event_bytes = 1000;
  ho.history_max_bytes = 8000;
  StartServer(ho);
  const std::string data(500, 'd');
  // A subscriber that reads nothing yet: its topic's events are owed to it.
  auto slow = Get("/events?topic=owed");
  ASSERT_TRUE(RunUntil([&] { return slow->retry.has_value(); }));
  slow->StopReading();
  std::vector<std::string> sent;
  std::string refusal;
  for (int i = 0; i < 100 && refusal.empty(); ++i) {
    std::string id = TryPublish("owed", data + std::to_string(i));
    if (id[0] == '!')
      refusal = id;
    else
      sent.push_back(data + std::to_string(i));
    // Other topics come and go meanwhile; they are what gets evicted.
    TryPublish("other" + std::to_string(i), data);
  }
  // The events owed to the subscriber filled the budget: further publishes
  // to it are refused with a clear error, never dropped silently.
  EXPECT_NE(refusal.find("history_max_bytes 8000"), std::string::npos)
      << refusal;
  EXPECT_GT(sent.size(), 3u);
  slow->ResumeReading();
  ASSERT_TRUE(RunUntil([&] { return slow->events.size() == sent.size(); }));
  EXPECT_EQ(slow->datas(), sent);
  // Delivered now: the budget frees up and publishes are accepted again.
  EXPECT_NE(TryPublish("owed", "after")[0], '!');
  ASSERT_TRUE(RunUntil([&] { return slow->events.size() == sent.size() + 1; }));
}

TEST_P(TopicBudgetTest, DeliveredEventsOfSubscribedTopicsMakeRoom) {
  HubOptions ho;
  ho.max_event_bytes = 1000;
  ho.history_max_bytes = 8000;
  StartServer(ho);
  auto live = Get("/events?topic=busy");
  ASSERT_TRUE(RunUntil([&] { return live->retry.has_value(); }));
  const std::string data(500, 'd');
  for (int i = 0; i < 100; ++i) {
    ASSERT_NE(TryPublish("busy", data)[0], '!') << i;
    ASSERT_TRUE(RunUntil([&] { return live->events.size() == size_t(i) + 1; }));
  }
  HubStats s = hub_->stats();
  EXPECT_LE(s.history_bytes, ho.history_max_bytes);
  EXPECT_GT(s.history_events_evicted, 80u);
  EXPECT_EQ(s.topics, 1u);
  // A client resuming before the kept history is told of the gap.
  auto old = Get("/events?topic=busy", "Last-Event-ID: " + Id(1) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return !old->events.empty(); }));
  EXPECT_EQ(old->events[0].type, "gap");
}

TEST_P(TopicBudgetTest, TopicsWithNothingLeftAreForgotten) {
  HubOptions ho;
  ho.history_max_events = 0;  // no replay: nothing to keep
  StartServer(ho);
  for (int i = 0; i < 50; ++i) TryPublish("gone" + std::to_string(i), "x");
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().topics == 0; }));
  // A subscriber's topic stays while subscribed, and goes with it.
  auto c = Get("/events?topic=short");
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().topics == 1; }));
  c->Reset();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().topics == 0; }));
  EXPECT_EQ(hub_->stats().topics_evicted, 0u);  // forgotten, not evicted
}

TEST_P(TopicBudgetTest, ExpiredHistoryOfAnUnsweptTopicIsNotReplayed) {
  HubOptions ho;
  ho.history_max_age = milliseconds(200);
  StartServer(ho);
  // A subscriber keeps the topic in use, so the sweep does not drop it whole
  // while its events age; a resume must still not see expired events.
  auto holder = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return holder->retry.has_value(); }));
  TryPublish("a", "old");  // 1
  RunFor(milliseconds(400));
  auto c = Get("/events?topic=a", "Last-Event-ID: " + Id(0) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return !c->events.empty(); }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_GE(hub_->stats().history_events_expired, 1u);
}

TEST_P(TopicBudgetTest, HeadAndShedRequestsLeaveNoTopicBehind) {
  HubOptions ho;
  ho.max_topics = 2;
  StartServer(ho);
  auto head = Raw("HEAD /events?topic=h1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return head->has_head(); }));
  // Three topics on one connection with room for two: shed, none kept.
  auto shed = Get("/events?topic=s1&topic=s2&topic=s3");
  ASSERT_TRUE(RunUntil([&] { return shed->closed(); }));
  EXPECT_EQ(hub_->stats().topics, 0u);
}

TEST(TopicBudgetOptionsTest, BudgetBelowOneEventIsRefused) {
  event_base* base = event_base_new();
  HubOptions ho;
  ho.max_event_bytes = 4096;
  ho.history_max_bytes = 1000;
  auto hub = Hub::Create(base, ho);
  EXPECT_FALSE(hub.ok());
  EXPECT_NE(hub.status().message().find("history_max_bytes"),
            std::string::npos);
  ho.history_max_bytes = 0;  // no budget is fine
  EXPECT_TRUE(Hub::Create(base, ho).ok());
  event_base_free(base);
}

INSTANTIATE_TEST_SUITE_P(Adapters, TopicBudgetTest, EveryAdapter(),
                         AdapterName);

}  // namespace
}  // namespace evsse::testing
