// Session, the event stream (module/core/session.cc, subscription.cc,
// resume.cc, stream_endpoint.cc), driven through a fake Exchange: no HTTP
// server and no socket (tests/support/core_fixture.h, fake_exchange.h). A
// test plays the peer: it holds written bytes as queued (backpressure),
// drains them (OnDrained), or closes the connection (OnClosed); the fake
// fails the test when the core breaks the seam's contract. The polling
// fallback over the same fixture: poll_session_test.cc.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "core_fixture.h"
#include "evsse/hub.h"
#include "evsse/options.h"
#include "evsse/pubsub/cursor.h"

namespace evsse {
namespace {

using evsse::testing::Contains;
using evsse::testing::FakeExchange;
using evsse::testing::RunLoopFor;
using std::chrono::milliseconds;

class SessionTest : public evsse::testing::CoreFixture {};

TEST_F(SessionTest, StreamStartsWithHeadersAndRetry) {
  StreamOptions o;
  o.retry = Millis(1500);
  Start({}, o);
  auto ex = Open("topic=a");
  // Memory mode: the response starts inside Handle.
  ASSERT_TRUE(ex->started());
  EXPECT_EQ(ex->status(), 200);
  ASSERT_NE(ex->response_header("Content-Type"), nullptr);
  EXPECT_STREQ(ex->response_header("Content-Type"),
               "text/event-stream; charset=utf-8");
  ASSERT_NE(ex->response_header("Cache-Control"), nullptr);
  EXPECT_STREQ(ex->response_header("Cache-Control"), "no-cache, no-transform");
  EXPECT_EQ(ex->body_bytes(), "retry: 1500\n\n");
  EXPECT_FALSE(ex->finished());
  EXPECT_EQ(hub_->stats().connections_active, 1u);
}

TEST_F(SessionTest, PaddingFollowsTheRetryLine) {
  StreamOptions o;
  o.retry = Millis(1000);
  o.padding_bytes = 8;
  Start({}, o);
  auto ex = Open("topic=a");
  EXPECT_EQ(ex->body_bytes(), "retry: 1000\n:        \n\n");
}

TEST_F(SessionTest, EventsAreFramedWithTypeDataLinesAndId) {
  Start();
  auto ex = Open("topic=a");
  size_t prelude = ex->body_bytes().size();
  std::string id = Publish("a", {"update", "one\ntwo\r\nthree"});
  ASSERT_FALSE(id.empty());
  std::string want =
      "event: update\ndata: one\ndata: two\ndata: three\nid: " + id + "\n\n";
  ASSERT_TRUE(RunUntil([&] { return ex->body_bytes().size() > prelude; }));
  EXPECT_EQ(ex->body_bytes().substr(prelude), want);
  // An untyped event has no event line; an empty data has one data line.
  std::string id2 = Publish("a", {"", ""});
  std::string want2 = "data: \nid: " + id2 + "\n\n";
  ASSERT_TRUE(RunUntil(
      [&] { return ex->body_bytes().size() >= prelude + want.size() + 2; }));
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "id: " + id2); }));
  EXPECT_EQ(ex->body_bytes().substr(prelude), want + want2);
  EXPECT_EQ(hub_->stats().events_delivered, 2u);
}

TEST_F(SessionTest, TwoTopicsCarryTheWholeCursorAsId) {
  Start();
  auto ex = Open("topic=a&topic=b");
  std::string ida = Publish("a", {"", "x"});
  std::string idb = Publish("b", {"", "y"});
  ASSERT_TRUE(RunUntil([&] { return Contains(ex->body_bytes(), "data: y"); }));
  // One topic's id alone cannot resume two: each event carries both
  // positions, in the order of the request.
  EXPECT_TRUE(
      Contains(ex->body_bytes(), "data: y\nid: " + ida + "," + idb + "\n\n"))
      << ex->body_bytes();
}

TEST_F(SessionTest, HeartbeatsFlowWhileIdle) {
  StreamOptions o;
  o.heartbeat = Millis(20);
  Start({}, o);
  auto ex = Open("topic=a");
  size_t prelude = ex->body_bytes().size();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().heartbeats >= 3; }));
  std::string tail = ex->body_bytes().substr(prelude);
  ASSERT_GE(tail.size(), 6u);
  // Only comment lines: nothing an EventSource dispatches.
  for (size_t i = 0; i + 1 < tail.size(); i += 2)
    EXPECT_EQ(tail.substr(i, 2), ":\n") << tail;
  EXPECT_FALSE(ex->finished());
}

TEST_F(SessionTest, NoHeartbeatWhileBytesAreQueued) {
  StreamOptions o;
  o.heartbeat = Millis(20);
  Start({}, o);
  auto ex = Open("topic=a");
  ex->Hold(true);
  Publish("a", {"", "held"});
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "data: held"); }));
  ASSERT_GT(ex->queued(), 0u);
  size_t writes = ex->writes();
  // The stall timeout (30 s) watches this connection, not the heartbeat:
  // several heartbeat periods pass without a write.
  RunLoopFor(base_, milliseconds(120));
  EXPECT_EQ(ex->writes(), writes);
  EXPECT_EQ(hub_->stats().heartbeats, 0u);
  ex->Hold(false);
  ex->Drain();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().heartbeats >= 1; }));
  EXPECT_GT(ex->writes(), writes);
}

TEST_F(SessionTest, ResumesAfterLastEventIdFromHistory) {
  Start();
  std::string id1 = Publish("a", {"", "one"});
  std::string id2 = Publish("a", {"", "two"});
  std::string id3 = Publish("a", {"", "three"});
  auto ex = Open("topic=a", id1.c_str());
  // The replay is written inside Handle (the fake takes it all at once).
  EXPECT_TRUE(Contains(
      ex->body_bytes(),
      "data: two\nid: " + id2 + "\n\n" + "data: three\nid: " + id3 + "\n\n"))
      << ex->body_bytes();
  EXPECT_FALSE(Contains(ex->body_bytes(), "data: one"));
  EXPECT_FALSE(Contains(ex->body_bytes(), "event: gap"));
  EXPECT_EQ(hub_->stats().replays, 1u);
  EXPECT_EQ(hub_->stats().replayed_events, 2u);
  // Then live.
  std::string id4 = Publish("a", {"", "four"});
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "id: " + id4); }));
}

TEST_F(SessionTest, ResumeInBatchesFollowsTheDrain) {
  StreamOptions o;
  o.replay_batch_bytes = 1;  // one event per batch
  Start({}, o);
  std::string id0 = Publish("a", {"", "zero"});
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(Publish("a", {"", "e" + std::to_string(i)}));
  FakeExchange* ex = Open("topic=a", id0.c_str(), /*held=*/true);
  // The first batch, then nothing more until the peer drained it.
  EXPECT_TRUE(Contains(ex->body_bytes(), "id: " + ids[0]));
  EXPECT_FALSE(Contains(ex->body_bytes(), "id: " + ids[1]));
  ex->Drain();
  EXPECT_TRUE(Contains(ex->body_bytes(), "id: " + ids[1]));
  EXPECT_FALSE(Contains(ex->body_bytes(), "id: " + ids[2]));
  ex->Drain();
  EXPECT_TRUE(Contains(ex->body_bytes(), "id: " + ids[2]));
}

TEST_F(SessionTest, UnknownEpochGetsTheGapEventThenGoesLive) {
  Start();
  std::string id1 = Publish("a", {"", "one"});
  // Same position, another epoch: a cursor from another history.
  std::string other = "zz" + id1;
  auto ex = Open("topic=a", other.c_str());
  const std::string& b = ex->body_bytes();
  EXPECT_TRUE(Contains(b,
                       "event: gap\ndata: "
                       "{\"topics\":[\"a\"],\"reason\":\"unknown\"}\nid: " +
                           id1 + "\n\n"))
      << b;
  EXPECT_FALSE(Contains(b, "data: one"));
  EXPECT_EQ(hub_->stats().gaps, 1u);
  std::string id2 = Publish("a", {"", "two"});
  ASSERT_TRUE(RunUntil([&] { return Contains(b, "data: two\nid: " + id2); }));
}

TEST_F(SessionTest, ExpiredCursorGetsTheGapEvent) {
  HubOptions h;
  h.history_max_events = 2;
  StreamOptions o;
  o.gap_event = "reset";
  Start(h, o);
  std::string id1 = Publish("a", {"", "one"});
  Publish("a", {"", "two"});
  Publish("a", {"", "three"});
  std::string id4 = Publish("a", {"", "four"});
  auto ex = Open("topic=a", id1.c_str());
  const std::string& b = ex->body_bytes();
  EXPECT_TRUE(Contains(b,
                       "event: reset\ndata: "
                       "{\"topics\":[\"a\"],\"reason\":\"expired\"}\nid: " +
                           id4 + "\n\n"))
      << b;
  // The gap moves the cursor to now: what is left in history is skipped.
  EXPECT_FALSE(Contains(b, "data: three"));
  EXPECT_FALSE(Contains(b, "data: four"));
  EXPECT_EQ(hub_->stats().gaps, 1u);
}

TEST_F(SessionTest, QueueAboveHighWatermarkWaitsInHistory) {
  StreamOptions o;
  o.max_queued_bytes = 1024;
  Start({}, o);
  auto ex = Open("topic=a");
  ex->Hold(true);
  std::string big(600, 'x');
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Publish("a", {"", big}));
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "id: " + ids[1]); }));
  // Past the watermark: the rest waits in the topic's history.
  EXPECT_GE(ex->queued(), 1024u);
  EXPECT_FALSE(Contains(ex->body_bytes(), "id: " + ids[2]));
  ex->Hold(false);
  ex->Drain();
  EXPECT_TRUE(Contains(ex->body_bytes(), "id: " + ids[3]));
  EXPECT_FALSE(ex->finished());
  EXPECT_EQ(hub_->stats().slow_consumer_closes, 0u);
}

TEST_F(SessionTest, SlowConsumerThatFallsOutOfHistoryIsAborted) {
  HubOptions h;
  h.history_max_events = 3;
  StreamOptions o;
  o.max_queued_bytes = 1024;
  Start(h, o);
  auto ex = Open("topic=a");
  ex->Hold(true);
  std::string big(600, 'x');
  for (int i = 0; i < 8 && !ex->finished(); ++i) Publish("a", {"", big});
  ASSERT_TRUE(RunUntil([&] { return ex->finished(); }));
  EXPECT_TRUE(ex->aborted());
  EXPECT_FALSE(ex->ended());
  EXPECT_EQ(hub_->stats().slow_consumer_closes, 1u);
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_F(SessionTest, OutputThatDoesNotDrainStallsAndIsAborted) {
  StreamOptions o;
  o.write_stall_timeout = Millis(30);
  Start({}, o);
  FakeExchange* ex = Open("topic=a");
  ex->Hold(true);
  Publish("a", {"", "stuck"});
  ASSERT_TRUE(RunUntil([&] { return ex->finished(); }));
  EXPECT_TRUE(ex->aborted());
  EXPECT_EQ(hub_->stats().stall_closes, 1u);
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_F(SessionTest, MaxLifetimeEndsTheStreamCleanly) {
  StreamOptions o;
  o.max_lifetime = Millis(30);
  Start({}, o);
  FakeExchange* ex = Open("topic=a");
  ASSERT_TRUE(RunUntil([&] { return ex->finished(); }));
  EXPECT_TRUE(ex->ended());
  EXPECT_FALSE(ex->aborted());
  EXPECT_EQ(hub_->stats().lifetime_closes, 1u);
}

TEST_F(SessionTest, ConnectionLimitShedsWithARetryHint) {
  HubOptions h;
  h.max_connections = 1;
  StreamOptions o;
  o.retry = Millis(3000);
  Start(h, o);
  FakeExchange* first = Open("topic=a");
  EXPECT_TRUE(first->started());
  // An EventSource gives up on a non-200 status: it gets 200, a retry hint
  // and the end.
  FakeExchange* second = Open("topic=a");
  ASSERT_TRUE(second->replied());
  EXPECT_EQ(second->status(), 200);
  EXPECT_TRUE(Contains(second->body_bytes(), "retry: 3000\n"));
  EXPECT_STREQ(second->response_header("Connection"), "close");
  // Anything else gets 503 with Retry-After.
  FakeExchange* plain = Make("topic=a");
  endpoint_->Handle(plain);
  EXPECT_EQ(plain->status(), 503);
  EXPECT_STREQ(plain->response_header("Retry-After"), "3");
  EXPECT_EQ(hub_->stats().connections_shed, 2u);
}

TEST_F(SessionTest, PeerCloseMidStreamEndsTheSession) {
  Start();
  auto ex = Open("topic=a");
  std::string id1 = Publish("a", {"", "one"});
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "id: " + id1); }));
  ex->PeerClose();
  EXPECT_EQ(hub_->stats().connections_active, 0u);
  // Nothing more reaches the exchange (the fake fails the test if so).
  size_t writes = ex->writes();
  std::string id2 = Publish("a", {"", "two"});
  auto other = Open("topic=a", id1.c_str());
  ASSERT_TRUE(RunUntil([&] { return Contains(other->body_bytes(), id2); }));
  EXPECT_EQ(ex->writes(), writes);
  EXPECT_FALSE(ex->ended());
  EXPECT_FALSE(ex->aborted());
}

TEST_F(SessionTest, ShutdownSendsAFinalRetryAndEnds) {
  StreamOptions o;
  o.retry = Millis(1234);
  Start({}, o);
  auto s1 = Open("topic=a");
  auto s2 = Open("topic=b");
  bool done = false;
  hub_->Shutdown(Millis(40), [&] { done = true; });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  for (FakeExchange* ex : {s1, s2}) {
    EXPECT_TRUE(ex->ended());
    EXPECT_FALSE(ex->aborted());
    const std::string& b = ex->body_bytes();
    ASSERT_GE(b.size(), 13u);
    EXPECT_EQ(b.substr(b.size() - 13), "retry: 1234\n\n") << b;
  }
  EXPECT_EQ(hub_->stats().connections_active, 0u);
  // While draining, a new EventSource is told when to come back.
  auto late = Open("topic=a");
  EXPECT_TRUE(late->replied());
  EXPECT_EQ(late->status(), 200);
  EXPECT_TRUE(Contains(late->body_bytes(), "retry: 1234\n"));
  EXPECT_STREQ(late->response_header("Connection"), "close");
}

TEST_F(SessionTest, HubDestroyedAbortsOpenStreams) {
  Start();
  auto ex = Open("topic=a");
  hub_.reset();
  EXPECT_TRUE(ex->aborted());
  EXPECT_FALSE(ex->ended());
}

TEST_F(SessionTest, BadRequestsGetAClearError) {
  Start();
  auto ex = Open("");
  ASSERT_TRUE(ex->replied());
  EXPECT_EQ(ex->status(), 400);
  EXPECT_FALSE(ex->body_bytes().empty());
  FakeExchange* post = Make("topic=a", Method::kPost);
  endpoint_->Handle(post);
  EXPECT_EQ(post->status(), 405);
  EXPECT_STREQ(post->response_header("Allow"), "GET, HEAD, OPTIONS");
}

// Backend mode (tests/support/fake_backend.h stands for the store): a fresh
// stream answers nothing until its topic is synced, so no event published
// in between is lost; the fake Exchange shows that no byte went out before.
TEST_F(SessionTest, BackendModeStreamStartsOnceItsTopicIsSynced) {
  Start();
  AttachBackend();
  // The fake reports its link up on its first tick, before it answers a
  // publish: once one is answered, the Hub knows the link is up (while it
  // is down a stream is answered at once).
  Publish("other", {"", "link up"});
  backend_->hold_syncs = true;
  FakeExchange* ex = Open("topic=a");
  ASSERT_TRUE(RunUntil([&] { return backend_->watched() == 1; }));
  EXPECT_FALSE(ex->started());
  EXPECT_EQ(ex->writes(), 0u);
  backend_->ReleaseSyncs();
  ASSERT_TRUE(RunUntil([&] { return ex->started(); }));
  EXPECT_EQ(ex->status(), 200);
  EXPECT_TRUE(Contains(ex->body_bytes(), "retry: "));
  std::string id = Publish("a", {"", "after the start"});
  ASSERT_TRUE(
      RunUntil([&] { return Contains(ex->body_bytes(), "id: " + id); }));
}

// A resume older than the node's history is fetched from the store in pages
// into the session's backlog; with a peer that drains slowly each batch
// waits for OnDrained, and the events arrive once each, in order.
TEST_F(SessionTest, BackendResumeOlderThanHistoryFollowsTheDrain) {
  HubOptions h;
  h.history_max_events = 10;
  StreamOptions o;
  o.replay_batch_bytes = 4096;
  Start(h, o);
  AttachBackend();
  constexpr int kEvents = 1500;  // more than one page (1000)
  std::string last;
  for (int i = 1; i <= kEvents; ++i)
    last = Publish("a", {"", "n" + std::to_string(i)});
  std::string from;
  pubsub::AppendBase36(from, 1000);  // the fake store's first epoch
  from += ".0";
  FakeExchange* ex = Open("topic=a", from.c_str(), /*held=*/true);
  size_t drains = 0;
  while (!Contains(ex->body_bytes(), "id: " + last + "\n\n")) {
    ASSERT_TRUE(RunUntil([&] {
      return ex->queued() > 0 || Contains(ex->body_bytes(), "id: " + last);
    }));
    ex->Drain();
    ++drains;
  }
  EXPECT_GT(drains, 3u);
  EXPECT_GE(store_.fetches, 2u);
  // Every event once, in order.
  const std::string& b = ex->body_bytes();
  size_t at = 0;
  for (int i = 1; i <= kEvents; ++i) {
    std::string line = "data: n" + std::to_string(i) + "\n";
    size_t found = b.find(line, at);
    ASSERT_NE(found, std::string::npos) << i;
    at = found + line.size();
  }
  EXPECT_EQ(b.find("data: n1\n", b.find("data: n1\n") + 1), std::string::npos);
  EXPECT_FALSE(ex->finished());
}

}  // namespace
}  // namespace evsse
