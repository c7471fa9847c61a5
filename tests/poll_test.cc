// The polling fallback: ?transport=poll answers JSON with the same topics,
// ids, cursors and gap signal as the stream.
#include <nlohmann/json.hpp>

#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class PollTest : public OnEveryAdapter<HttpFixture> {
 protected:
  std::string Id(uint64_t seq) const {
    std::string e;
    pubsub::AppendBase36(e, hub_->epoch());
    return e + "." + std::to_string(seq);
  }
  // Poll sends GET /events?transport=poll&<query> and returns the JSON.
  json Poll(const std::string& query, const std::string& headers = "") {
    auto c = Raw("GET /events?transport=poll&" + query +
                 " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
    EXPECT_TRUE(RunUntil([&] {
      return c->has_head() && c->body().size() >= 1 && c->body().back() == '\n';
    }));
    EXPECT_EQ(c->status(), 200) << c->body();
    EXPECT_EQ(c->header("Content-Type"), "application/json; charset=utf-8");
    return json::parse(c->body(), nullptr, false);
  }
  static std::vector<std::string> Datas(const json& j) {
    std::vector<std::string> out;
    for (auto& e : j["events"]) out.push_back(e["data"]);
    return out;
  }
};

TEST_P(PollTest, ReturnsEventsAfterTheCursorInTheDocumentedShape) {
  StreamOptions so;
  so.poll_timeout = milliseconds(0);
  StartServer({}, so);
  Publish("a", "one", "t1");
  Publish("a", "two\nlines");
  Publish("a", "three", "t3");
  auto c = Raw("GET /events?transport=poll&topic=a&lastEventId=" + Id(1) +
               " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return !c->body().empty(); }));
  EXPECT_EQ(c->body(), "{\"events\":[{\"id\":\"" + Id(2) +
                           "\",\"type\":\"message\",\"data\":\"two\\nlines\"},"
                           "{\"id\":\"" +
                           Id(3) +
                           "\",\"type\":\"t3\",\"data\":\"three\"}],"
                           "\"last_event_id\":\"" +
                           Id(3) + "\"}\n");
  EXPECT_EQ(hub_->stats().polls, 1u);
}

TEST_P(PollTest, LongPollWaitsForTheFirstEvent) {
  StreamOptions so;
  so.poll_timeout = milliseconds(5000);
  StartServer({}, so);
  auto c =
      Raw("GET /events?transport=poll&topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  RunFor(milliseconds(100));
  EXPECT_FALSE(c->has_head());  // still waiting
  Publish("a", "hello");
  ASSERT_TRUE(RunUntil([&] { return !c->body().empty(); }));
  json j = json::parse(c->body());
  EXPECT_EQ(Datas(j), std::vector<std::string>{"hello"});
  EXPECT_EQ(j["last_event_id"], Id(1));
}

TEST_P(PollTest, LongPollTimesOutWithNoEventsAndTheCurrentCursor) {
  StreamOptions so;
  so.poll_timeout = milliseconds(150);
  StartServer({}, so);
  Publish("other", "x");  // seq 1
  auto t0 = std::chrono::steady_clock::now();
  json j = Poll("topic=a");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(140));
  EXPECT_TRUE(j["events"].empty());
  EXPECT_EQ(j["last_event_id"], Id(0));  // topic a has had no event yet
  EXPECT_FALSE(j.contains("gap"));
}

TEST_P(PollTest, ExpiredCursorGetsTheGapSignal) {
  HubOptions ho;
  ho.history_max_events = 2;
  StreamOptions so;
  so.poll_timeout = milliseconds(0);
  StartServer(ho, so);
  for (int i = 1; i <= 5; ++i) Publish("a", std::to_string(i));
  json j = Poll("topic=a&lastEventId=" + Id(1));
  EXPECT_EQ(j["gap"], json::parse(R"({"topics":["a"],"reason":"expired"})"));
  EXPECT_TRUE(j["events"].empty());
  EXPECT_EQ(j["last_event_id"], Id(5));
  EXPECT_EQ(hub_->stats().gaps, 1u);
}

TEST_P(PollTest, MaxEventsPagesThroughHistory) {
  StreamOptions so;
  so.poll_timeout = milliseconds(0);
  so.poll_max_events = 4;
  StartServer({}, so);
  for (int i = 1; i <= 10; ++i) Publish("a", std::to_string(i));
  std::vector<std::string> all;
  std::string cursor = Id(0);
  for (int page = 0; page < 3; ++page) {
    json j = Poll("topic=a&lastEventId=" + cursor);
    for (auto& d : Datas(j)) all.push_back(d);
    cursor = j["last_event_id"];
  }
  EXPECT_EQ(all, (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7",
                                           "8", "9", "10"}));
  EXPECT_EQ(cursor, Id(10));
}

// A client can move between streaming and polling without losing or
// repeating events: the ids are the same cursors.
TEST_P(PollTest, SwitchStreamToPollToStream) {
  StreamOptions so;
  so.poll_timeout = milliseconds(0);
  StartServer({}, so);
  auto s1 = Get("/events?topic=a&topic=b");
  ASSERT_TRUE(RunUntil([&] { return s1->retry.has_value(); }));
  Publish("a", "1");
  Publish("b", "2");
  ASSERT_TRUE(RunUntil([&] { return s1->events.size() == 2; }));
  // The cursor is what the client had when it left (a half-closed client
  // may still read what the server sends before it notices).
  const std::string cursor1 = s1->last_event_id();
  s1->Close();
  Publish("b", "3");
  Publish("a", "4");
  json p = Poll("topic=a&topic=b", "Last-Event-ID: " + cursor1 + "\r\n");
  EXPECT_EQ(Datas(p), (std::vector<std::string>{"3", "4"}));
  Publish("a", "5");
  Publish("b", "6");
  auto s2 =
      Get("/events?topic=a&topic=b",
          "Last-Event-ID: " + p["last_event_id"].get<std::string>() + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return s2->events.size() == 2; }));
  EXPECT_EQ(s2->datas(), (std::vector<std::string>{"5", "6"}));
  Publish("a", "7");
  ASSERT_TRUE(RunUntil([&] { return s2->events.size() == 3; }));
  // And back to polling from the stream's id.
  const std::string cursor2 = s2->last_event_id();
  s2->Close();
  Publish("b", "8");
  json p2 = Poll("topic=a&topic=b&lastEventId=" + cursor2);
  EXPECT_EQ(Datas(p2), (std::vector<std::string>{"8"}));
}

TEST_P(PollTest, ShutdownAnswersAWaitingPoll) {
  StreamOptions so;
  so.poll_timeout = milliseconds(10000);
  StartServer({}, so);
  auto c =
      Raw("GET /events?transport=poll&topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  RunFor(milliseconds(50));
  bool done = false;
  hub_->Shutdown(milliseconds(100), [&] { done = true; });
  ASSERT_TRUE(RunUntil([&] { return done && !c->body().empty(); }));
  EXPECT_EQ(c->status(), 200);
  EXPECT_TRUE(json::parse(c->body())["events"].empty());
}

TEST_P(PollTest, DisabledPollIsABadRequest) {
  StreamOptions so;
  so.poll_enabled = false;
  StartServer({}, so);
  auto c =
      Raw("GET /events?transport=poll&topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return !c->body().empty(); }));
  EXPECT_EQ(c->status(), 400);
}

INSTANTIATE_TEST_SUITE_P(Adapters, PollTest, EveryAdapter(), AdapterName);

}  // namespace
}  // namespace evsse::testing
