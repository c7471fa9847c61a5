// The subscribe endpoint on a real evhttp server over loopback: headers,
// framing, resume, gaps, heartbeats, backpressure, limits, cleanup.
#include <algorithm>
#include <string>

#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

class StreamTest : public OnEveryAdapter<HttpFixture> {
 protected:
  std::string Epoch() const {
    std::string e;
    pubsub::AppendBase36(e, hub_->epoch());
    return e;
  }
  std::string Id(uint64_t seq) const {
    return Epoch() + "." + std::to_string(seq);
  }
};

TEST_P(StreamTest, HeadersAndFirstBytesAtOnce) {
  StartServer();
  auto c = Get("/events?topic=news");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  EXPECT_EQ(c->status(), 200);
  EXPECT_EQ(c->header("Content-Type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(c->header("Cache-Control"), "no-cache, no-transform");
  EXPECT_EQ(c->header("X-Accel-Buffering"), "no");
  EXPECT_EQ(c->header("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(c->has_header("Content-Length"));
  // retry + uniform(0, jitter) with the defaults (2000 + 0..1000).
  EXPECT_GE(*c->retry, 2000u);
  EXPECT_LE(*c->retry, 3000u);
  EXPECT_TRUE(c->events.empty());
  EXPECT_EQ(hub_->stats().connections_active, 1u);
}

// For proxies that buffer the first bytes of a response.
TEST_P(StreamTest, PaddingCommentComesFirst) {
  StreamOptions so;
  so.padding_bytes = 2048;
  StartServer({}, so);
  auto c = Get("/events?topic=news");
  ASSERT_TRUE(RunUntil([&] { return c->comments == 1; }));
  EXPECT_EQ(c->comment_texts[0], std::string(2048, ' '));
  EXPECT_EQ(c->body().rfind("retry: ", 0), 0u);  // retry, then padding
  Publish("news", "after padding");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
}

TEST_P(StreamTest, MultiLineDataTypeAndIds) {
  StartServer();
  auto c = Get("/events?topic=news");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  std::string id1 = Publish("news", "a\r\nb\rc\nd", "greet");
  std::string id2 = Publish("news", "", "");
  std::string id3 = Publish("news", "trailing\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 3; }));
  EXPECT_EQ(id1, Id(1));
  EXPECT_EQ(c->events[0].type, "greet");
  EXPECT_EQ(c->events[0].data, "a\nb\nc\nd");
  EXPECT_EQ(c->events[0].last_event_id, id1);
  EXPECT_EQ(c->events[1].type, "message");
  EXPECT_EQ(c->events[1].data, "");
  EXPECT_EQ(c->events[1].last_event_id, id2);
  EXPECT_EQ(c->events[2].data, "trailing\n");
  EXPECT_EQ(c->events[2].last_event_id, id3);
  EXPECT_NE(c->body().find("event: greet\ndata: a\ndata: b\ndata: c\ndata: "
                           "d\nid: " +
                           id1 + "\n\n"),
            std::string::npos);
}

TEST_P(StreamTest, PublishRejectsBadInputAtOnce) {
  StartServer();
  bool called = false;
  auto cb = [&](Result<std::string>) { called = true; };
  Status s = hub_->Publish("news", {"bad\ntype", "x"}, cb);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("line feed"), std::string::npos) << s.message();
  EXPECT_FALSE(hub_->Publish("news", {"a\rb", "x"}).ok());
  EXPECT_FALSE(hub_->Publish("news", {std::string("a\0b", 3), "x"}).ok());
  EXPECT_FALSE(hub_->Publish("news", {"", "\xff\xfe"}).ok());
  EXPECT_FALSE(hub_->Publish("bad topic", {"", "x"}).ok());
  EXPECT_FALSE(hub_->Publish("", {"", "x"}).ok());
  EXPECT_FALSE(hub_->Publish("{braces}", {"", "x"}).ok());
  RunFor(milliseconds(20));
  EXPECT_FALSE(called);  // refused events never call back
}

TEST_P(StreamTest, MethodAndRequestErrors) {
  StartServer();
  auto post =
      Raw("POST /events?topic=a HTTP/1.1\r\nHost: x\r\n"
          "Content-Length: 0\r\n\r\n");
  auto none = Get("/events");
  auto bad = Get("/events?topic=a%20b");
  auto many =
      Get("/events?topic=1&topic=2&topic=3&topic=4&topic=5&topic=6"
          "&topic=7&topic=8&topic=9");
  auto dup = Get("/events?topic=a&topic=a");
  auto bad_id = Get("/events?topic=a", "Last-Event-ID: not-an-id\r\n");
  auto huge_id = Get("/events?topic=a",
                     "Last-Event-ID: " + std::string(5000, '1') + "\r\n");
  auto count = Get("/events?topic=a&topic=b", "Last-Event-ID: abc.1\r\n");
  auto query_id = Get("/events?topic=a&lastEventId=%00");
  std::vector<TestClient*> all = {post.get(),    none.get(),  bad.get(),
                                  many.get(),    dup.get(),   bad_id.get(),
                                  huge_id.get(), count.get(), query_id.get()};
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(all.begin(), all.end(), [](TestClient* c) {
      return c->closed() || !c->body().empty();
    });
  }));
  EXPECT_EQ(post->status(), 405);
  EXPECT_EQ(post->header("Allow"), "GET, HEAD, OPTIONS");
  for (TestClient* c :
       {none.get(), bad.get(), many.get(), dup.get(), bad_id.get(),
        huge_id.get(), count.get(), query_id.get()}) {
    EXPECT_EQ(c->status(), 400) << c->body();
    EXPECT_EQ(c->header("Content-Type"), "text/plain; charset=utf-8");
    EXPECT_FALSE(c->body().empty());
  }
  EXPECT_NE(none->body().find("topic"), std::string::npos) << none->body();
  EXPECT_NE(bad_id->body().find("Last-Event-ID"), std::string::npos)
      << bad_id->body();
  EXPECT_NE(query_id->body().find("lastEventId"), std::string::npos)
      << query_id->body();
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_P(StreamTest, HeadAnswersHeadersOnly) {
  StartServer();
  auto c = Raw("HEAD /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->has_head(); }));
  RunFor(milliseconds(20));
  EXPECT_EQ(c->status(), 200);
  EXPECT_EQ(c->header("Content-Type"), "text/event-stream; charset=utf-8");
  EXPECT_TRUE(c->body().empty());
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_P(StreamTest, Http10ClientGetsARawStream) {
  StartServer();
  auto c = Get("/events?topic=a", "", "HTTP/1.0");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  EXPECT_FALSE(c->has_header("Transfer-Encoding"));
  Publish("a", "one");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].data, "one");
}

// Nothing lost, nothing twice, in order, across a reconnect.
TEST_P(StreamTest, ResumeAfterDisconnectWithLastEventId) {
  StartServer();
  auto c1 = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c1->retry.has_value(); }));
  for (int i = 1; i <= 3; ++i) Publish("a", "e" + std::to_string(i));
  ASSERT_TRUE(RunUntil([&] { return c1->events.size() == 3; }));
  std::string last = c1->last_event_id();
  c1->Reset();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
  for (int i = 4; i <= 6; ++i) Publish("a", "e" + std::to_string(i));
  Publish("other", "not for us");
  auto c2 = Get("/events?topic=a", "Last-Event-ID: " + last + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return c2->events.size() == 3; }));
  Publish("a", "e7");
  ASSERT_TRUE(RunUntil([&] { return c2->events.size() == 4; }));
  RunFor(milliseconds(20));
  EXPECT_EQ(c2->datas(), (std::vector<std::string>{"e4", "e5", "e6", "e7"}));
  EXPECT_EQ(c2->ids(), (std::vector<std::string>{Id(4), Id(5), Id(6), Id(8)}));
  EXPECT_EQ(hub_->stats().replays, 1u);
  EXPECT_EQ(hub_->stats().replayed_events, 3u);
  EXPECT_EQ(hub_->stats().gaps, 0u);
}

TEST_P(StreamTest, ResumeWithQueryParameterAndHeaderWins) {
  StartServer();
  for (int i = 1; i <= 5; ++i) Publish("a", "e" + std::to_string(i));
  auto q = Get("/events?topic=a&lastEventId=" + Id(3));
  auto h = Get("/events?topic=a&lastEventId=" + Id(1),
               "Last-Event-ID: " + Id(4) + "\r\n");
  ASSERT_TRUE(
      RunUntil([&] { return q->events.size() == 2 && h->events.size() == 1; }));
  EXPECT_EQ(q->datas(), (std::vector<std::string>{"e4", "e5"}));
  EXPECT_EQ(h->datas(), (std::vector<std::string>{"e5"}));
}

// Replay is written in small batches, each after the previous drained,
// while new events keep arriving: the client must see one exact sequence.
TEST_P(StreamTest, ReplayMergesWithLiveEventsWithoutGapOrDuplicate) {
  HubOptions ho;
  ho.history_max_events = 5000;
  StreamOptions so;
  so.replay_batch_bytes = 300;  // a few events per batch
  StartServer(ho, so);
  for (int i = 1; i <= 1000; ++i) {
    ASSERT_TRUE(hub_->Publish("a", {"", std::to_string(i)}).ok());
  }
  RunFor(milliseconds(50));
  auto c = Get("/events?topic=a", "Last-Event-ID: " + Id(100) + "\r\n");
  int next = 1001;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (next <= 1300) {
          EXPECT_TRUE(hub_->Publish("a", {"", std::to_string(next++)}).ok());
        }
        return c->events.size() == 1200;
      },
      std::chrono::seconds(20)));
  RunFor(milliseconds(30));
  ASSERT_EQ(c->events.size(), 1200u);
  for (size_t i = 0; i < c->events.size(); ++i) {
    ASSERT_EQ(c->events[i].data, std::to_string(101 + i)) << i;
    ASSERT_EQ(c->events[i].last_event_id, Id(101 + i)) << i;
  }
}

TEST_P(StreamTest, CursorOlderThanHistoryGetsGapThenLive) {
  HubOptions ho;
  ho.history_max_events = 5;
  StartServer(ho);
  for (int i = 1; i <= 10; ++i) Publish("a", "e" + std::to_string(i));
  auto c = Get("/events?topic=a", "Last-Event-ID: " + Id(2) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
  EXPECT_EQ(c->events[0].data, R"({"topics":["a"],"reason":"expired"})");
  EXPECT_EQ(c->events[0].last_event_id, Id(10));
  Publish("a", "e11");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->events[1].data, "e11");
  EXPECT_EQ(hub_->stats().gaps, 1u);
  // A cursor still inside history replays without a gap.
  auto ok = Get("/events?topic=a", "Last-Event-ID: " + Id(8) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return ok->events.size() == 3; }));
  EXPECT_EQ(ok->datas(), (std::vector<std::string>{"e9", "e10", "e11"}));
}

TEST_P(StreamTest, HistoryAgeLimitExpiresEvents) {
  HubOptions ho;
  ho.history_max_age = milliseconds(100);
  StartServer(ho);
  Publish("a", "old1");
  Publish("a", "old2");
  RunFor(milliseconds(300));
  EXPECT_EQ(hub_->stats().history_events, 0u);
  auto c = Get("/events?topic=a", "Last-Event-ID: " + Id(1) + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "gap");
}

TEST_P(StreamTest, UnknownEpochOrFutureCursorGetsGap) {
  StartServer();
  Publish("a", "e1");
  auto other = Get("/events?topic=a", "Last-Event-ID: zzzz.1\r\n");
  auto future = Get("/events?topic=a", "Last-Event-ID: " + Id(999999) + "\r\n");
  ASSERT_TRUE(RunUntil(
      [&] { return other->events.size() == 1 && future->events.size() == 1; }));
  for (TestClient* c : {other.get(), future.get()}) {
    EXPECT_EQ(c->events[0].type, "gap");
    EXPECT_EQ(c->events[0].data, R"({"topics":["a"],"reason":"unknown"})");
    EXPECT_EQ(c->events[0].last_event_id, Id(1));
  }
}

TEST_P(StreamTest, GapEventNameIsConfigurable) {
  StreamOptions so;
  so.gap_event = "resync";
  StartServer({}, so);
  auto c = Get("/events?topic=a", "Last-Event-ID: zzzz.1\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].type, "resync");
}

TEST_P(StreamTest, SeveralTopicsUseACompositeCursor) {
  StartServer();
  Publish("x", "before");  // seq 1, another topic; b stays at 0
  auto c = Get("/events?topic=a&topic=b");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  Publish("a", "a1");  // 2
  Publish("b", "b1");  // 3
  Publish("c", "c1");  // 4, not subscribed
  Publish("a", "a2");  // 5
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 3; }));
  EXPECT_EQ(c->datas(), (std::vector<std::string>{"a1", "b1", "a2"}));
  EXPECT_EQ(c->ids(),
            (std::vector<std::string>{Id(2) + "," + Id(0), Id(2) + "," + Id(3),
                                      Id(5) + "," + Id(3)}));
  std::string last = c->last_event_id();
  c->Close();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
  Publish("b", "b2");  // 6
  Publish("a", "a3");  // 7
  auto r = Get("/events?topic=a&topic=b", "Last-Event-ID: " + last + "\r\n");
  ASSERT_TRUE(RunUntil([&] { return r->events.size() == 2; }));
  EXPECT_EQ(r->datas(), (std::vector<std::string>{"b2", "a3"}));
  EXPECT_EQ(r->ids(), (std::vector<std::string>{Id(5) + "," + Id(6),
                                                Id(7) + "," + Id(6)}));
}

TEST_P(StreamTest, HeartbeatsOnlyWhenIdle) {
  StreamOptions so;
  so.heartbeat = milliseconds(100);
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunUntil([&] { return c->comments >= 3; }));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, milliseconds(280));
  EXPECT_EQ(c->comment_texts[0], "");  // ":\n"
  // Writes reset the heartbeat timer: events every 40 ms, no comments.
  int before = c->comments;
  for (int i = 0; i < 8; ++i) {
    Publish("a", "tick");
    RunFor(milliseconds(40));
  }
  EXPECT_EQ(c->comments, before);
  EXPECT_GE(hub_->stats().heartbeats, 3u);
}

TEST_P(StreamTest, SlowConsumerIsClosedWhileFastOneKeepsReceiving) {
  HubOptions ho;
  ho.history_max_events = 100;
  StreamOptions so;
  so.max_queued_bytes = 64 * 1024;
  StartServer(ho, so);
  auto slow = Get("/events?topic=a");
  auto fast = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil(
      [&] { return slow->retry.has_value() && fast->retry.has_value(); }));
  slow->StopReading();
  std::string payload(1000, 'x');
  int published = 0;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (published < 20000 && hub_->stats().slow_consumer_closes == 0) {
          for (int i = 0; i < 20; ++i, ++published)
            EXPECT_TRUE(hub_->Publish("a", {"", payload}).ok());
        }
        return hub_->stats().slow_consumer_closes == 1 &&
               fast->events.size() == static_cast<size_t>(published);
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(hub_->stats().connections_active, 1u);
  // The fast one got every event, in order.
  for (size_t i = 1; i < fast->events.size(); ++i)
    ASSERT_EQ(fast->events[i].last_event_id, Id(i + 1));
}

TEST_P(StreamTest, WriteStallClosesAPeerThatStopsReading) {
  HubOptions ho;
  ho.history_max_events = 1000000;
  StreamOptions so;
  so.write_stall_timeout = milliseconds(200);
  so.max_queued_bytes = 64 << 20;  // only the stall timer can close it
  StartServer(ho, so);
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  c->StopReading();
  std::string payload(4000, 'y');
  for (int i = 0; i < 2000; ++i)
    ASSERT_TRUE(hub_->Publish("a", {"", payload}).ok());
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().stall_closes == 1; }));
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_P(StreamTest, ConnectionLimitShedsWithRetryForEventSource) {
  HubOptions ho;
  ho.max_connections = 2;
  StartServer(ho);
  auto a = Get("/events?topic=a");
  auto b = Get("/events?topic=a");
  ASSERT_TRUE(
      RunUntil([&] { return a->retry.has_value() && b->retry.has_value(); }));
  auto es = Get("/events?topic=a");  // Accept: text/event-stream
  auto plain = Raw("GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return es->closed() && plain->closed(); }));
  EXPECT_EQ(es->status(), 200);
  EXPECT_EQ(es->header("Content-Type"), "text/event-stream; charset=utf-8");
  ASSERT_TRUE(es->retry.has_value());
  EXPECT_GE(*es->retry, 2000u);
  EXPECT_TRUE(es->events.empty());
  EXPECT_EQ(plain->status(), 503);
  EXPECT_FALSE(plain->header("Retry-After").empty());
  EXPECT_EQ(hub_->stats().connections_shed, 2u);
  // The connected ones are unaffected.
  Publish("a", "still here");
  ASSERT_TRUE(
      RunUntil([&] { return a->events.size() == 1 && b->events.size() == 1; }));
}

TEST_P(StreamTest, PerTopicSubscriberLimit) {
  HubOptions ho;
  ho.max_subscribers_per_topic = 1;
  StartServer(ho);
  auto a = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return a->retry.has_value(); }));
  auto a2 = Raw("GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto b = Get("/events?topic=b");
  ASSERT_TRUE(RunUntil([&] { return a2->closed() && b->retry.has_value(); }));
  EXPECT_EQ(a2->status(), 503);
  EXPECT_EQ(b->status(), 200);
}

TEST_P(StreamTest, LifetimeEndsTheStreamCleanly) {
  StreamOptions so;
  so.max_lifetime = milliseconds(150);
  so.lifetime_jitter = milliseconds(50);
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->chunked_end(); }));
  EXPECT_EQ(hub_->stats().lifetime_closes, 1u);
  EXPECT_EQ(hub_->stats().connections_active, 0u);
}

TEST_P(StreamTest, ShutdownDrainsInWavesAndCallsBackOnce) {
  StartServer();
  std::vector<std::unique_ptr<TestClient>> cs;
  for (int i = 0; i < 12; ++i) cs.push_back(Get("/events?topic=a"));
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(cs.begin(), cs.end(),
                       [](auto& c) { return c->retry.has_value(); });
  }));
  for (auto& c : cs) c->retry.reset();
  int done = 0;
  auto t0 = std::chrono::steady_clock::now();
  hub_->Shutdown(milliseconds(300), [&] { ++done; });
  auto late = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return done == 1; }));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, milliseconds(200));  // spread, not all at once
  ASSERT_TRUE(RunUntil([&] { return late->closed(); }));
  for (auto& c : cs) {
    EXPECT_TRUE(c->chunked_end());
    EXPECT_TRUE(c->retry.has_value());  // the final retry hint
  }
  EXPECT_EQ(late->status(), 200);  // shed, EventSource style
  RunFor(milliseconds(20));
  EXPECT_EQ(done, 1);
}

TEST_P(StreamTest, ManyConnectDisconnectCyclesLeaveNothingBehind) {
  StartServer();
  for (int i = 0; i < 300; ++i) {
    auto c = Get("/events?topic=t" + std::to_string(i % 7));
    ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
    if (i % 3 == 0) {
      Publish("t" + std::to_string(i % 7), "x");
      ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
    }
    if (i % 2)
      c->Reset();
    else
      c->Close();
  }
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
  EXPECT_EQ(hub_->stats().connections_total, 300u);
}

TEST_P(StreamTest, HubDestroyedWithOpenStreams) {
  StartServer();
  auto a = Get("/events?topic=a");
  auto b = Get("/events?topic=a&topic=b");
  ASSERT_TRUE(
      RunUntil([&] { return a->retry.has_value() && b->retry.has_value(); }));
  bool cancelled = false;
  ASSERT_TRUE(hub_->Publish("a", {"", "never"},
                            [&](Result<std::string> r) {
                              cancelled = !r.ok() && r.status().code() ==
                                                         StatusCode::kCancelled;
                            })
                  .ok());
  hub_.reset();  // before the loop delivered it
  EXPECT_TRUE(cancelled);
  ASSERT_TRUE(RunUntil([&] { return a->closed() && b->closed(); }));
  FreeServer();  // no callback may reach the dead Hub
}

INSTANTIATE_TEST_SUITE_P(Adapters, StreamTest, EveryAdapter(), AdapterName);

}  // namespace
}  // namespace evsse::testing
