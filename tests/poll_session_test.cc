// PollSession, the polling fallback ?transport=poll (module/core/
// poll_session.cc, subscription.cc, resume.cc), driven through a fake
// Exchange over the same fixture as session_test (tests/support/
// core_fixture.h): one request, one JSON answer, at once or when the first
// event comes; resume by cursor, the gap, the limits, and how a waiting poll
// ends. poll_test.cc runs the same protocol over both HTTP adapters.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core_fixture.h"
#include "evsse/hub.h"
#include "evsse/options.h"
#include "evsse/pubsub/cursor.h"

namespace evsse {
namespace {

using evsse::testing::FakeExchange;
using nlohmann::json;

class PollSessionTest : public evsse::testing::CoreFixture {
 protected:
  // StartPolling starts the Hub with long polls that wait up to `timeout`.
  void StartPolling(Millis timeout, HubOptions hub_options = {}) {
    StreamOptions o;
    o.poll_timeout = timeout;
    Start(std::move(hub_options), o);
  }
  // Waiting starts the Hub with long polls of `timeout`, publishes one
  // event and polls after it: the poll waits. `cursor` is the event's id.
  FakeExchange* Waiting(Millis timeout, std::string* cursor) {
    StartPolling(timeout);
    *cursor = Publish("a", {"", "one"});
    FakeExchange* ex = Poll("topic=a&lastEventId=" + *cursor);
    EXPECT_FALSE(ex->replied());  // nothing after the cursor: it waits
    return ex;
  }
  // Answer is the poll's JSON answer (a failed expectation if it has none).
  static json Answer(const FakeExchange* ex) {
    EXPECT_TRUE(ex->replied());
    EXPECT_EQ(ex->status(), 200) << ex->body_bytes();
    return json::parse(ex->body_bytes(), nullptr, false);
  }
  // ExpectNothingAfter: the answer has no event and keeps the cursor.
  static void ExpectNothingAfter(const FakeExchange* ex,
                                 const std::string& cursor) {
    json j = Answer(ex);
    EXPECT_TRUE(j["events"].empty()) << ex->body_bytes();
    EXPECT_EQ(j["last_event_id"], cursor);
  }
};

TEST_F(PollSessionTest, PollAnswersPendingEventsAsJson) {
  Start();
  std::string id1 = Publish("a", {"", "one"});
  std::string id2 = Publish("a", {"kind", "two\nlines"});
  FakeExchange* ex = Poll("topic=a&lastEventId=" + id1);
  ASSERT_TRUE(ex->replied());
  EXPECT_FALSE(ex->started());
  EXPECT_EQ(ex->status(), 200);
  EXPECT_STREQ(ex->response_header("Content-Type"),
               "application/json; charset=utf-8");
  EXPECT_STREQ(ex->response_header("Cache-Control"), "no-store");
  json j = Answer(ex);
  ASSERT_EQ(j["events"].size(), 1u) << ex->body_bytes();
  EXPECT_EQ(j["events"][0]["id"], id2);
  EXPECT_EQ(j["events"][0]["type"], "kind");
  EXPECT_EQ(j["events"][0]["data"], "two\nlines");
  EXPECT_EQ(j["last_event_id"], id2);
  EXPECT_FALSE(j.contains("gap"));
  EXPECT_EQ(hub_->stats().polls, 1u);
}

TEST_F(PollSessionTest, LongPollWaitsForTheNextEvent) {
  std::string id1;
  FakeExchange* ex = Waiting(Millis(60000), &id1);
  std::string id2 = Publish("a", {"", "two"});
  ASSERT_TRUE(RunUntil([&] { return ex->replied(); }));
  json j = Answer(ex);
  ASSERT_EQ(j["events"].size(), 1u);
  EXPECT_EQ(j["events"][0]["data"], "two");
  EXPECT_EQ(j["last_event_id"], id2);
}

TEST_F(PollSessionTest, LongPollTimesOutWithNoEvents) {
  std::string id1;
  FakeExchange* ex = Waiting(Millis(30), &id1);
  ASSERT_TRUE(RunUntil([&] { return ex->replied(); }));
  ExpectNothingAfter(ex, id1);
}

TEST_F(PollSessionTest, PollWithUnknownCursorReportsTheGap) {
  Start();
  std::string id1 = Publish("a", {"", "one"});
  FakeExchange* ex = Poll("topic=a&lastEventId=zz" + id1);
  ASSERT_TRUE(ex->replied());
  json j = Answer(ex);
  EXPECT_TRUE(j["events"].empty());
  ASSERT_TRUE(j.contains("gap")) << ex->body_bytes();
  EXPECT_EQ(j["gap"]["reason"], "unknown");
  EXPECT_EQ(j["gap"]["topics"][0], "a");
  EXPECT_EQ(j["last_event_id"], id1);
}

TEST_F(PollSessionTest, PollPeerClosedWhileWaiting) {
  StartPolling(Millis(60000));
  FakeExchange* ex = Poll("topic=a");
  ASSERT_FALSE(ex->replied());
  EXPECT_EQ(hub_->stats().connections_active, 1u);
  ex->PeerClose();
  EXPECT_EQ(hub_->stats().connections_active, 0u);
  Publish("a", {"", "after"});
  RunUntil([&] { return hub_->stats().events_published >= 1; });
  EXPECT_FALSE(ex->replied());
}

// Two topics: like a stream's, each id is the whole cursor, in the order of
// the request, so that any of them resumes both.
TEST_F(PollSessionTest, TwoTopicsCarryTheWholeCursorAsId) {
  Start();
  std::string a0 = Publish("a", {"", "a0"});
  std::string b0 = Publish("b", {"", "b0"});
  std::string a1 = Publish("a", {"", "a1"});
  std::string b1 = Publish("b", {"", "b1"});
  FakeExchange* ex = Poll("topic=a&topic=b&lastEventId=" + a0 + "," + b0);
  json j = Answer(ex);
  ASSERT_EQ(j["events"].size(), 2u) << ex->body_bytes();
  EXPECT_EQ(j["events"][0]["data"], "a1");
  EXPECT_EQ(j["events"][0]["id"], a1 + "," + b0);
  EXPECT_EQ(j["events"][1]["data"], "b1");
  EXPECT_EQ(j["events"][1]["id"], a1 + "," + b1);
  EXPECT_EQ(j["last_event_id"], a1 + "," + b1);
}

// poll_max_events pages: each answer's last_event_id is the next request's
// cursor, and the pages join without a gap or a repeat.
TEST_F(PollSessionTest, MaxEventsPagesAndTheCursorContinues) {
  StreamOptions o;
  o.poll_max_events = 2;
  Start({}, o);
  std::string from = Publish("a", {"", "start"});
  for (int i = 0; i < 5; ++i) Publish("a", {"", "e" + std::to_string(i)});
  std::vector<std::string> got;
  for (int page = 0; page < 3; ++page) {
    json j = Answer(Poll("topic=a&lastEventId=" + from));
    EXPECT_LE(j["events"].size(), 2u);
    for (auto& e : j["events"]) got.push_back(e["data"]);
    from = j["last_event_id"];
  }
  EXPECT_EQ(got, (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"}));
  EXPECT_EQ(hub_->stats().polls, 3u);
  EXPECT_EQ(hub_->stats().events_delivered, 5u);
}

// A waiting poll is answered, never dropped: at shutdown and when the Hub
// goes away it gets what there is (nothing) and its cursor.
TEST_F(PollSessionTest, ShutdownAnswersAWaitingPoll) {
  std::string id1;
  FakeExchange* ex = Waiting(Millis(60000), &id1);
  bool done = false;
  hub_->Shutdown(Millis(0), [&] { done = true; });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  ExpectNothingAfter(ex, id1);
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_F(PollSessionTest, HubDestroyedAnswersAWaitingPoll) {
  std::string id1;
  FakeExchange* ex = Waiting(Millis(60000), &id1);
  hub_.reset();
  ExpectNothingAfter(ex, id1);
}

// Backend mode: a cursor older than the node's history is answered from
// pages fetched from the store, the first poll_max_events after it.
TEST_F(PollSessionTest, BackendResumeOlderThanHistoryAnswersFromTheStore) {
  HubOptions h;
  h.history_max_events = 5;
  StreamOptions o;
  o.poll_max_events = 3;
  o.poll_timeout = Millis(0);
  Start(h, o);
  AttachBackend();
  std::vector<std::string> ids;
  for (int i = 1; i <= 20; ++i)
    ids.push_back(Publish("a", {"", "n" + std::to_string(i)}));
  FakeExchange* ex = Poll("topic=a&lastEventId=" + ids[1]);
  ASSERT_TRUE(RunUntil([&] { return ex->replied(); }));
  json j = Answer(ex);
  ASSERT_EQ(j["events"].size(), 3u) << ex->body_bytes();
  EXPECT_EQ(j["events"][0]["data"], "n3");
  EXPECT_EQ(j["events"][0]["id"], ids[2]);
  EXPECT_EQ(j["events"][2]["data"], "n5");
  EXPECT_EQ(j["last_event_id"], ids[4]);
  EXPECT_FALSE(j.contains("gap"));
  EXPECT_GE(store_.fetches, 1u);
}

// The store cannot replay: the poll is told to come back (503 with
// Retry-After), not answered with a hole.
TEST_F(PollSessionTest, StoreUnavailableDuringTheReplayIs503) {
  HubOptions h;
  h.history_max_events = 2;
  Start(h);
  AttachBackend();
  std::vector<std::string> ids;
  for (int i = 1; i <= 6; ++i)
    ids.push_back(Publish("a", {"", "n" + std::to_string(i)}));
  backend_->hold_fetches = true;
  FakeExchange* ex = Poll("topic=a&lastEventId=" + ids[0]);
  ASSERT_TRUE(RunUntil([&] { return backend_->held_fetches() > 0; }));
  EXPECT_FALSE(ex->replied());
  backend_->SetUp(false);
  backend_->ReleaseFetches();
  ASSERT_TRUE(RunUntil([&] { return ex->replied(); }));
  EXPECT_EQ(ex->status(), 503);
  EXPECT_STREQ(ex->response_header("Retry-After"), "1");
  EXPECT_STREQ(ex->response_header("Content-Type"),
               "text/plain; charset=utf-8");
  EXPECT_EQ(ex->body_bytes(), "history store unavailable; poll again\n");
  EXPECT_EQ(hub_->stats().connections_active, 0u);
  EXPECT_EQ(hub_->stats().polls, 0u);
}

TEST_F(PollSessionTest, DisabledPollIsABadRequest) {
  StreamOptions o;
  o.poll_enabled = false;
  Start({}, o);
  FakeExchange* ex = Poll("topic=a");
  EXPECT_EQ(ex->status(), 400);
  EXPECT_EQ(ex->body_bytes(),
            "transport=poll is not enabled on this endpoint\n");
}

}  // namespace
}  // namespace evsse
