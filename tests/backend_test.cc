// The Hub's side of the Backend seam, over an in-memory fake store shared by
// two nodes (two Hubs, two evhttp servers, one loop): publish on one node,
// receive on the other; resume on another node from Last-Event-ID with the
// exact sequence; paged fetches; trimmed history; link loss and back-fill.
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "evsse/pubsub/cursor.h"
#include "fake_backend.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

class BackendTest : public HttpFixture {
 protected:
  void SetUp() override {
    HttpFixture::SetUp();
    HubOptions ho;
    ho.history_max_events = 100;
    StreamOptions so;
    so.poll_timeout = milliseconds(0);
    StartServer(ho, so);
    a_ = std::make_unique<FakeBackend>(&store_, base_, hub_.get());
    // Node B: its own server and Hub on the same loop.
    http_b_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_b_, "127.0.0.1", 0);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&a), &len);
    port_b_ = ntohs(a.sin_port);
    hub_b_ = Hub::Create(base_, ho).value();
    ASSERT_TRUE(
        evhttp::Mount(http_b_, "/events", hub_b_.get(), so).Release().ok());
    b_ = std::make_unique<FakeBackend>(&store_, base_, hub_b_.get());
    RunFor(milliseconds(5));
  }
  void TearDown() override {
    evhttp_free(http_b_);
    b_.reset();
    hub_b_.reset();
    evhttp_free(http_);
    http_ = nullptr;
    a_.reset();
    HttpFixture::TearDown();
  }
  std::unique_ptr<TestClient> GetB(const std::string& target,
                                   const std::string& headers = "") {
    return std::make_unique<TestClient>(
        port_b_, "GET " + target +
                     " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" +
                     headers + "\r\n");
  }
  // PublishOn publishes through `hub` and waits for the id.
  std::string PublishOn(Hub* hub, const std::string& topic,
                        const std::string& data) {
    std::optional<Result<std::string>> got;
    EXPECT_TRUE(
        hub->Publish(topic, {"", data}, [&](Result<std::string> r) { got = r; })
            .ok());
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    return got && got->ok() ? got->value() : "";
  }

  FakeStore store_;
  std::unique_ptr<FakeBackend> a_, b_;
  struct ::evhttp* http_b_ = nullptr;
  std::unique_ptr<Hub> hub_b_;
  int port_b_ = 0;
};

TEST_F(BackendTest, PublishOnOneNodeReachesTheOther) {
  auto c = GetB("/events?topic=orders");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value() && b_->watched(); }));
  RunFor(milliseconds(5));
  std::string id = PublishOn(hub_.get(), "orders", "shipped");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].data, "shipped");
  EXPECT_EQ(c->events[0].last_event_id, id);  // the store's id, on the wire
  EXPECT_NE(id.find('.'), std::string::npos);
}

// The first subscriber of a topic on a node gets its response only once the
// node follows the topic: an event published before that is before its start
// (it may or may not get it), and every event published after the response
// started reaches it. Answering at once would start it after an event
// published while the sync ran: an event it is owed and never gets.
TEST_F(BackendTest, AFreshStreamStartsOnlyOnceItsTopicIsSynced) {
  b_->hold_syncs = true;
  auto c = GetB("/events?topic=orders");
  ASSERT_TRUE(RunUntil([&] { return b_->watched() == 1; }));
  RunFor(milliseconds(20));
  EXPECT_FALSE(c->has_head());  // no answer while the tail is unknown
  PublishOn(hub_.get(), "orders", "while syncing");
  b_->ReleaseSyncs();
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  EXPECT_EQ(c->status(), 200);
  std::string after = PublishOn(hub_.get(), "orders", "after the start");
  ASSERT_TRUE(RunUntil([&] { return !c->events.empty(); }));
  RunFor(milliseconds(5));
  ASSERT_EQ(c->events.size(), 1u);
  EXPECT_EQ(c->events[0].data, "after the start");
  EXPECT_EQ(c->events[0].last_event_id, after);
}

TEST_F(BackendTest, AStreamWaitingForItsStartIsAnsweredAtShutdown) {
  b_->hold_syncs = true;
  auto c = GetB("/events?topic=orders");
  ASSERT_TRUE(RunUntil([&] { return b_->watched() == 1; }));
  bool done = false;
  hub_b_->Shutdown(milliseconds(0), [&] { done = true; });
  ASSERT_TRUE(RunUntil([&] { return done && c->chunked_end(); }));
  EXPECT_EQ(c->status(), 200);  // a browser reconnects after a 200
  EXPECT_TRUE(c->retry.has_value());
}

TEST_F(BackendTest, ResumeOnAnotherNodeWithTheExactSequence) {
  auto c = Get("/events?topic=t");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value() && a_->watched(); }));
  RunFor(milliseconds(5));
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", "e" + std::to_string(i)));
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 5; }));
  std::string last = c->last_event_id();
  c->Reset();
  for (int i = 6; i <= 10; ++i)
    ids.push_back(PublishOn(hub_b_.get(), "t", "e" + std::to_string(i)));
  // Node B never followed topic t: it syncs, fetches 6..10, then goes live.
  auto r = GetB("/events?topic=t", "Last-Event-ID: " + last + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 5; }));
  ids.push_back(PublishOn(hub_.get(), "t", "e11"));
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 6; }));
  RunFor(milliseconds(10));
  std::vector<std::string> want_ids(ids.begin() + 5, ids.end());
  EXPECT_EQ(r->ids(), want_ids);
  EXPECT_EQ(r->datas(),
            (std::vector<std::string>{"e6", "e7", "e8", "e9", "e10", "e11"}));
  EXPECT_GE(store_.fetches, 1u);
}

// Backend::Expand: a requested topic served by several store topics is
// followed as those, with one cursor position each, and resumes on another
// node; the expansion is asynchronous, a client may leave meanwhile, and a
// failed one sheds the request.
TEST_F(BackendTest, ATopicExpandedByTheStoreIsFollowedAndResumed) {
  a_->expand = b_->expand = {{"all", {"x", "y"}}};
  auto c = Get("/events?topic=all");
  ASSERT_TRUE(
      RunUntil([&] { return c->retry.has_value() && a_->watched() == 2; }));
  std::string x1 = PublishOn(hub_.get(), "x", "x1");
  std::string y1 = PublishOn(hub_.get(), "y", "y1");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->datas(), (std::vector<std::string>{"x1", "y1"}));
  EXPECT_EQ(c->last_event_id(), x1 + "," + y1);
  const std::string last = c->last_event_id();
  c->Reset();
  std::string x2 = PublishOn(hub_.get(), "x", "x2");
  auto r = GetB("/events?topic=all", "Last-Event-ID: " + last + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 1; }));
  RunFor(milliseconds(10));
  EXPECT_EQ(r->datas(), (std::vector<std::string>{"x2"}));
  EXPECT_EQ(r->last_event_id(), x2 + "," + y1);
  // A one-topic cursor with fewer positions: the store topics added since
  // are read from their start.
  auto grown = GetB("/events?topic=all", "Last-Event-ID: " + x1 + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return grown->events.size() == 2; }));
  RunFor(milliseconds(10));
  // (In position order: the fake store's positions are one clock.)
  EXPECT_EQ(grown->datas(), (std::vector<std::string>{"y1", "x2"}));
  // Two requested topics and a cursor that fits neither count: 400.
  auto bad = GetB("/events?topic=all&topic=z", "Last-Event-ID: " + x1 + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return bad->has_head(); }));
  EXPECT_EQ(bad->status(), 400);
  EXPECT_NE(bad->body().find("1 position for 3 topics"), std::string::npos)
      << bad->body();
  // Expanded into a name already requested: 400.
  auto dup = GetB("/events?topic=all&topic=x");
  ASSERT_TRUE(RunUntil([&] { return dup->has_head(); }));
  EXPECT_EQ(dup->status(), 400);
  EXPECT_NE(dup->body().find("duplicate topic"), std::string::npos)
      << dup->body();

  // A client that leaves while its topics are being expanded.
  b_->hold_expands = true;
  uint64_t active = hub_b_->stats().connections_active;
  auto gone = GetB("/events?topic=all");
  ASSERT_TRUE(RunUntil([&] { return b_->held_fetches() == 1; }));
  gone->Reset();
  RunFor(milliseconds(10));
  b_->hold_expands = false;
  b_->ReleaseFetches();
  RunFor(milliseconds(10));
  EXPECT_EQ(hub_b_->stats().connections_active, active);
  // An expansion that fails: shed (503 with Retry-After), nothing opened.
  b_->expand_error = true;
  auto shed = GetB("/events?topic=all");
  ASSERT_TRUE(RunUntil([&] { return shed->has_head(); }));
  EXPECT_EQ(shed->status(), 200);  // an EventSource is told when to retry
  EXPECT_TRUE(shed->retry.has_value());
  EXPECT_EQ(hub_b_->stats().connections_active, active);
}

TEST_F(BackendTest, LongResumeIsFetchedInPagesInOrder) {
  for (int i = 1; i <= 2500; ++i) PublishOn(hub_.get(), "t", std::to_string(i));
  // The fake store's first epoch is 1000 (base 36 in ids); position 0 is
  // "from the start".
  std::string epoch;
  pubsub::AppendBase36(epoch, 1000);
  auto first = GetB("/events?topic=t", "Last-Event-ID: " + epoch + ".0\r\n");
  ASSERT_TRUE(RunUntil([&] { return first->events.size() == 2500; },
                       std::chrono::seconds(20)));
  for (size_t i = 0; i < 2500; ++i)
    ASSERT_EQ(first->events[i].data, std::to_string(i + 1)) << i;
  EXPECT_GE(store_.fetches, 3u);
  PublishOn(hub_.get(), "t", "live");
  ASSERT_TRUE(RunUntil([&] { return first->events.size() == 2501; }));
}

TEST_F(BackendTest, TrimmedStreamGivesTheGapEvent) {
  store_.max_len = 10;
  std::vector<std::string> ids;
  for (int i = 1; i <= 30; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", std::to_string(i)));
  auto c = GetB("/events?topic=t", "Last-Event-ID: " + ids[4] + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_EQ(c->events[0].data, R"({"topics":["t"],"reason":"expired"})");
  EXPECT_EQ(c->events[0].last_event_id, ids.back());
  // A cursor still inside the stream resumes without a gap.
  auto ok = GetB("/events?topic=t", "Last-Event-ID: " + ids[25] + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return ok->events.size() == 4; }));
  EXPECT_EQ(ok->datas(), (std::vector<std::string>{"27", "28", "29", "30"}));
}

TEST_F(BackendTest, UnknownEpochGivesTheGapEvent) {
  PublishOn(hub_.get(), "t", "x");
  auto c = GetB("/events?topic=t", "Last-Event-ID: zz.5-0\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_EQ(c->events[0].data, R"({"topics":["t"],"reason":"unknown"})");
}

// A failover that lost the newest events: the store goes on under a new
// epoch from what its copy has, and its new positions sort among the lost
// ones. A subscriber that had lost events is closed; a cursor up to the
// copy's end resumes without a gap, one past it gets the gap event and then
// everything written since, on a node that followed the fork and on one
// that did not (the store's record decides).
TEST_F(BackendTest, AFailoverContinuesGoodCursorsAndTellsLostOnes) {
  auto live = GetB("/events?topic=t");
  ASSERT_TRUE(
      RunUntil([&] { return hub_b_->stats().connections_active == 1; }));
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", std::to_string(i)));
  ASSERT_TRUE(RunUntil([&] { return live->events.size() == 5; }));
  store_.Fork("t", 2);  // 4 and 5 are lost
  ids.push_back(PublishOn(hub_.get(), "t", "6"));
  ids.push_back(PublishOn(hub_.get(), "t", "7"));
  EXPECT_NE(ids[5].substr(0, ids[5].find('.')),
            ids[0].substr(0, ids[0].find('.')));
  // B followed the fork: its subscriber had 4 and 5, so it resumes.
  ASSERT_TRUE(RunUntil([&] { return live->chunked_end(); }));
  EXPECT_EQ(live->datas(), (std::vector<std::string>{"1", "2", "3", "4", "5"}));

  for (int node = 0; node < 2; ++node) {
    SCOPED_TRACE(node == 0 ? "node A (did not follow)" : "node B (followed)");
    auto get = [&](const std::string& id) {
      std::string h = "Last-Event-ID: " + id + "\r\n";
      return node == 0 ? Get("/events?topic=t", h) : GetB("/events?topic=t", h);
    };
    auto good = get(ids[1]);
    ASSERT_TRUE(RunUntil([&] { return good->events.size() == 3; }));
    EXPECT_EQ(good->datas(), (std::vector<std::string>{"3", "6", "7"}));
    // Each event keeps the id it was published with: 3 its old epoch's.
    EXPECT_EQ(good->ids(), (std::vector<std::string>{ids[2], ids[5], ids[6]}));
    auto lost = get(ids[4]);
    ASSERT_TRUE(RunUntil([&] { return lost->events.size() == 3; }));
    EXPECT_EQ(lost->events[0].type, "gap");
    EXPECT_EQ(lost->events[1].data, "6");
    EXPECT_EQ(lost->events[2].data, "7");
    // The new ids resume as any others.
    auto again = get(ids[5]);
    ASSERT_TRUE(RunUntil([&] { return again->events.size() == 1; }));
    EXPECT_EQ(again->datas(), (std::vector<std::string>{"7"}));
  }
}

// A cursor past the newest position a node holds is checked with the
// store: one past the stream's end (FetchResult::ahead: a stream started
// over under its epoch) gets the gap event, reason unknown.
TEST_F(BackendTest, CursorPastTheStreamEndGivesTheGapEvent) {
  std::string id = PublishOn(hub_.get(), "t", "x");
  auto cursor = pubsub::ParseCursor(id, 8);
  ASSERT_TRUE(cursor.ok());
  pubsub::TopicCursor past = (*cursor)[0];
  past.position.major += 1000000;  // within the wall-clock slack
  std::string far;
  pubsub::AppendPosition(far, past);
  size_t fetches = store_.fetches;
  auto c = GetB("/events?topic=t", "Last-Event-ID: " + far + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_EQ(c->events[0].data, R"({"topics":["t"],"reason":"unknown"})");
  EXPECT_EQ(c->events[0].last_event_id, id);
  EXPECT_EQ(store_.fetches, fetches + 1);
  std::string next = PublishOn(hub_.get(), "t", "y");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->events[1].last_event_id, next);
  // A cursor the node holds needs no question.
  auto held = GetB("/events?topic=t", "Last-Event-ID: " + id + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return held->events.size() == 1; }));
  EXPECT_EQ(held->datas(), (std::vector<std::string>{"y"}));
  EXPECT_EQ(store_.fetches, fetches + 1);
}

// BackendSink::Restarted: the Hub drops what it holds of the topic and
// ends its subscribers; their cursors are then past the stream's end: gap.
TEST_F(BackendTest, AStreamStartedOverEndsItsSubscribersIntoTheGap) {
  auto c = GetB("/events?topic=t");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value() && b_->watched(); }));
  PublishOn(hub_.get(), "t", "old");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  const std::string cursor = c->last_event_id();
  b_->StartOver("t");
  ASSERT_TRUE(RunUntil([&] { return c->chunked_end(); }));
  auto r = GetB("/events?topic=t", "Last-Event-ID: " + cursor + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 1; }));
  EXPECT_EQ(r->events[0].type, "gap");
  EXPECT_EQ(r->events[0].data, R"({"topics":["t"],"reason":"unknown"})");
  PublishOn(hub_.get(), "t", "new");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 2; }));
  EXPECT_EQ(r->events[1].data, "new");
}

// BackendSink::ExpansionChanged: streams that asked for the topic end
// cleanly, their cursor sent as an id of its own, and resume into the new
// set (the store topic added, from its start); a stream that asked for the
// store topic by name is left alone.
TEST_F(BackendTest, ATopicExpandedDifferentlyEndsTheStreamsThatAskedForIt) {
  a_->expand = b_->expand = {{"all", {"x"}}};
  auto c = GetB("/events?topic=all");
  auto named = GetB("/events?topic=x");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value() && named->retry; }));
  std::string x1 = PublishOn(hub_.get(), "x", "x1");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  b_->expand = {{"all", {"x", "y"}}};
  std::string y1 = PublishOn(hub_.get(), "y", "y1");
  b_->ExpansionChanged("all");
  ASSERT_TRUE(RunUntil([&] { return c->chunked_end(); }));
  EXPECT_EQ(c->last_event_id(), x1);
  EXPECT_FALSE(named->chunked_end());
  auto r = GetB("/events?topic=all", "Last-Event-ID: " + x1 + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 1; }));
  EXPECT_EQ(r->datas(), (std::vector<std::string>{"y1"}));
  EXPECT_EQ(r->last_event_id(), x1 + "," + y1);
}

TEST_F(BackendTest, LinkLossFailsPublishesAndBackFillLosesNothing) {
  auto c = GetB("/events?topic=t");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value() && b_->watched(); }));
  RunFor(milliseconds(5));
  PublishOn(hub_.get(), "t", "1");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  b_->SetUp(false);
  // Node B: publishing fails at once; its subscribers stay connected.
  std::optional<Result<std::string>> failed;
  ASSERT_TRUE(hub_b_
                  ->Publish("t", {"", "lost?"},
                            [&](Result<std::string> r) { failed = r; })
                  .ok());
  ASSERT_TRUE(RunUntil([&] { return failed.has_value(); }));
  EXPECT_EQ(failed->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hub_b_->stats().publish_errors, 1u);
  for (int i = 2; i <= 6; ++i) PublishOn(hub_.get(), "t", std::to_string(i));
  RunFor(milliseconds(20));
  EXPECT_EQ(c->events.size(), 1u);  // missed while down
  EXPECT_FALSE(c->closed());
  b_->SetUp(true);
  PublishOn(hub_.get(), "t", "7");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 7; }));
  RunFor(milliseconds(10));
  EXPECT_EQ(c->datas(),
            (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7"}));
}

TEST_F(BackendTest, SeveralTopicsMergeFetchedAndLocalEventsInOrder) {
  auto c = Get("/events?topic=a&topic=b");
  ASSERT_TRUE(
      RunUntil([&] { return c->retry.has_value() && a_->watched() == 2; }));
  RunFor(milliseconds(5));
  PublishOn(hub_.get(), "a", "a1");
  PublishOn(hub_.get(), "b", "b1");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  std::string last = c->last_event_id();
  // The streams did not exist when the client subscribed: its cursor must
  // still carry their epochs once their first events arrived.
  std::string ea, eb;
  pubsub::AppendBase36(ea, 1000);
  pubsub::AppendBase36(eb, 1001);
  EXPECT_EQ(last.rfind(ea + ".", 0), 0u) << last;
  EXPECT_NE(last.find("," + eb + "."), std::string::npos) << last;
  c->Reset();
  PublishOn(hub_.get(), "b", "b2");
  PublishOn(hub_.get(), "a", "a2");
  PublishOn(hub_.get(), "b", "b3");
  auto r = GetB("/events?topic=a&topic=b", "Last-Event-ID: " + last + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 3; }));
  EXPECT_EQ(r->datas(), (std::vector<std::string>{"b2", "a2", "b3"}));
}

TEST_F(BackendTest, PollResumesThroughTheStore) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 4; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", std::to_string(i)));
  auto c = std::make_unique<TestClient>(
      port_b_, "GET /events?transport=poll&topic=t&lastEventId=" + ids[1] +
                   " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(
      RunUntil([&] { return !c->body().empty() && c->body().back() == '\n'; }));
  auto j = nlohmann::json::parse(c->body());
  ASSERT_EQ(j["events"].size(), 2u);
  EXPECT_EQ(j["events"][0]["data"], "3");
  EXPECT_EQ(j["events"][1]["id"], ids[3]);
  EXPECT_EQ(j["last_event_id"], ids[3]);
}

// ---- Shared replay fetches
// ---------------------------------------------------

// Clients that reconnect together resume from the same cursor: node B asks
// the store for each page once, whatever the number of sessions.
TEST_F(BackendTest, SessionsResumingTogetherShareEveryPageFetch) {
  constexpr int kEvents = 2500;  // three pages of 1000
  constexpr size_t kSessions = 6;
  for (int i = 1; i <= kEvents; ++i)
    PublishOn(hub_.get(), "t", std::to_string(i));
  std::string epoch;
  pubsub::AppendBase36(epoch, 1000);
  b_->hold_fetches = true;
  std::vector<std::unique_ptr<TestClient>> cs;
  for (size_t i = 0; i < kSessions; ++i)
    cs.push_back(GetB("/events?topic=t", "Last-Event-ID: " + epoch + ".0\r\n"));
  // Every session asks for the first page while it is in flight: one fetch.
  ASSERT_TRUE(RunUntil(
      [&] { return hub_b_->stats().replay_page_requests == kSessions; }));
  EXPECT_EQ(store_.fetches, 1u);
  EXPECT_EQ(b_->held_fetches(), 1u);
  b_->hold_fetches = false;
  b_->ReleaseFetches();
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& c : cs)
          if (c->events.size() < static_cast<size_t>(kEvents)) return false;
        return true;
      },
      std::chrono::seconds(30)));
  for (auto& c : cs) {
    ASSERT_EQ(c->events.size(), static_cast<size_t>(kEvents));
    for (int i = 0; i < kEvents; ++i)
      ASSERT_EQ(c->events[i].data, std::to_string(i + 1)) << i;
    EXPECT_FALSE(c->closed());
  }
  // ceil(2500 / 1000) pages; the sessions' other requests were shared.
  EXPECT_EQ(store_.fetches, 3u);
  HubStats st = hub_b_->stats();
  EXPECT_EQ(st.replay_page_requests, 3 * kSessions);
  EXPECT_EQ(st.replay_pages_shared, 3 * kSessions - 3);
  // A client arriving moments later is served from the pages just fetched.
  auto late = GetB("/events?topic=t", "Last-Event-ID: " + epoch + ".0\r\n");
  ASSERT_TRUE(RunUntil(
      [&] { return late->events.size() == static_cast<size_t>(kEvents); },
      std::chrono::seconds(30)));
  EXPECT_EQ(late->datas(), cs[0]->datas());
  EXPECT_EQ(store_.fetches, 3u);
  PublishOn(hub_.get(), "t", "live");
  ASSERT_TRUE(RunUntil([&] {
    for (auto& c : cs)
      if (c->events.size() != kEvents + 1u) return false;
    return late->events.size() == kEvents + 1u;
  }));
}

// Sessions that go away while their shared fetch is in flight are skipped
// when it lands; the others get their exact sequence.
TEST_F(BackendTest, SessionsClosedDuringASharedFetchDoNotDisturbTheOthers) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 20; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", std::to_string(i)));
  b_->hold_fetches = true;
  std::vector<std::unique_ptr<TestClient>> cs;
  for (int i = 0; i < 4; ++i)
    cs.push_back(GetB("/events?topic=t", "Last-Event-ID: " + ids[4] + "\r\n"));
  ASSERT_TRUE(
      RunUntil([&] { return hub_b_->stats().replay_page_requests == 4; }));
  EXPECT_EQ(b_->held_fetches(), 1u);
  cs[0]->Reset();
  cs[2]->Close();
  ASSERT_TRUE(
      RunUntil([&] { return hub_b_->stats().connections_active == 2; }));
  b_->ReleaseFetches();
  ASSERT_TRUE(RunUntil([&] {
    return cs[1]->events.size() == 15 && cs[3]->events.size() == 15;
  }));
  std::vector<std::string> want(ids.begin() + 5, ids.end());
  EXPECT_EQ(cs[1]->ids(), want);
  EXPECT_EQ(cs[3]->ids(), want);
  EXPECT_EQ(store_.fetches, 1u);
}

// The link drops while a shared fetch is in flight: every waiting session
// ends (its client retries with the same cursor), and the pages of the old
// link are not served after it comes back.
TEST_F(BackendTest, LinkLossDuringASharedFetchEndsEveryWaiter) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 20; ++i)
    ids.push_back(PublishOn(hub_.get(), "t", std::to_string(i)));
  b_->hold_fetches = true;
  std::vector<std::unique_ptr<TestClient>> cs;
  for (int i = 0; i < 3; ++i)
    cs.push_back(GetB("/events?topic=t", "Last-Event-ID: " + ids[9] + "\r\n"));
  ASSERT_TRUE(
      RunUntil([&] { return hub_b_->stats().replay_page_requests == 3; }));
  b_->SetUp(false);
  b_->ReleaseFetches();  // the held reply fails: the link is down
  ASSERT_TRUE(RunUntil([&] {
    for (auto& c : cs)
      if (!c->chunked_end() && !c->closed()) return false;
    return true;
  }));
  for (auto& c : cs) EXPECT_TRUE(c->events.empty());
  EXPECT_EQ(store_.fetches, 1u);
  b_->hold_fetches = false;
  b_->SetUp(true);
  RunFor(milliseconds(10));
  auto again = GetB("/events?topic=t", "Last-Event-ID: " + ids[9] + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return again->events.size() == 10; }));
  EXPECT_EQ(again->ids(),
            std::vector<std::string>(ids.begin() + 10, ids.end()));
  EXPECT_EQ(store_.fetches, 2u);
}

}  // namespace
}  // namespace evsse::testing
