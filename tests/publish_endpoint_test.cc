// The HTTP publish endpoint on a real evhttp server: POST /publish?topic=T
// with the data as body, answered 200 {"id":"..."} once subscribers of
// /events got the event.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

class PublishEndpointTest : public OnEveryAdapter<HttpFixture> {
 protected:
  // Post sends a raw POST with `body` and Content-Length.
  std::unique_ptr<TestClient> Post(const std::string& target,
                                   const std::string& body,
                                   const std::string& extra_headers = "") {
    return Raw("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" +
               body);
  }

  // Complete: the head and the whole Content-Length body arrived (or the
  // server closed).
  static bool Complete(const TestClient& c) {
    if (!c.has_head()) return false;
    if (c.closed()) return true;
    if (!c.has_header("Content-Length")) return false;
    return c.body().size() >= std::stoul(c.header("Content-Length"));
  }

  // Send `request` and wait for the whole response.
  std::unique_ptr<TestClient> Exchange(std::unique_ptr<TestClient> c) {
    EXPECT_TRUE(RunUntil([&] { return Complete(*c); }))
        << "no complete response; got status " << c->status() << " body "
        << c->body();
    return c;
  }

  // Subscribe opens /events?topic=<topic> and waits until it streams.
  std::unique_ptr<TestClient> Subscribe(const std::string& topic) {
    auto c = Get("/events?topic=" + topic);
    EXPECT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
    EXPECT_EQ(c->status(), 200);
    return c;
  }

  // IdFromBody returns the id of a {"id":"<epoch>.<seq>"}\n body, or ""
  // (and fails the test).
  std::string IdFromBody(const std::string& body) {
    constexpr std::string_view kHead = "{\"id\":\"";
    constexpr std::string_view kTail = "\"}\n";
    std::string_view b = body;
    bool framed = b.size() > kHead.size() + kTail.size() &&
                  b.substr(0, kHead.size()) == kHead &&
                  b.substr(b.size() - kTail.size()) == kTail;
    std::string_view id =
        framed ? b.substr(kHead.size(), b.size() - kHead.size() - kTail.size())
               : std::string_view();
    size_t dot = id.find('.');
    bool ok =
        framed && dot != std::string_view::npos && dot > 0 &&
        dot + 1 < id.size() &&
        id.substr(0, dot).find_first_not_of(
            "0123456789abcdefghijklmnopqrstuvwxyz") == std::string_view::npos &&
        id.substr(dot + 1).find_first_not_of("0123456789") ==
            std::string_view::npos;
    if (!ok) {
      ADD_FAILURE() << "unexpected publish response body: " << body;
      return "";
    }
    return std::string(id);
  }

  std::string EpochText() {
    std::string s;
    pubsub::AppendBase36(s, hub_->epoch());
    return s;
  }
};

TEST_P(PublishEndpointTest, PostPublishesAndAnswersTheId) {
  StartServer();
  auto sub = Subscribe("a");
  auto other = Subscribe("b");

  auto r = Exchange(Post("/publish?topic=a", "hello world"));
  EXPECT_EQ(r->status(), 200);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  std::string id = IdFromBody(r->body());
  EXPECT_EQ(r->body(), "{\"id\":\"" + id + "\"}\n");
  EXPECT_THAT(id, StartsWith(EpochText() + "."));

  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].data, "hello world");
  EXPECT_EQ(sub->events[0].type, "message");
  EXPECT_EQ(sub->events[0].last_event_id, id);

  // A second publish gets the next id; the subscriber of b saw neither.
  auto r2 = Exchange(Post("/publish?topic=a", "second"));
  EXPECT_EQ(r2->status(), 200);
  std::string id2 = IdFromBody(r2->body());
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 2; }));
  EXPECT_EQ(sub->events[1].last_event_id, id2);
  EXPECT_NE(id, id2);
  EXPECT_THAT(other->events, IsEmpty());
  EXPECT_EQ(hub_->stats().events_published, 2u);
}

TEST_P(PublishEndpointTest, EventParameterSetsTheType) {
  StartServer();
  auto sub = Subscribe("a");
  auto r = Exchange(Post("/publish?topic=a&event=update", "{\"n\":1}"));
  EXPECT_EQ(r->status(), 200);
  std::string id = IdFromBody(r->body());
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].type, "update");
  EXPECT_EQ(sub->events[0].data, "{\"n\":1}");
  EXPECT_EQ(sub->events[0].last_event_id, id);
  EXPECT_THAT(sub->body(),
              HasSubstr("event: update\ndata: {\"n\":1}\nid: " + id + "\n\n"));
}

TEST_P(PublishEndpointTest, LineBreaksInTheBodyBecomeDataLines) {
  StartServer();
  auto sub = Subscribe("a");
  auto r = Exchange(Post("/publish?topic=a", "one\r\ntwo\rthree\nfour"));
  EXPECT_EQ(r->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].data, "one\ntwo\nthree\nfour");
  EXPECT_THAT(sub->body(),
              HasSubstr("data: one\ndata: two\ndata: three\ndata: four\n"));
  // No bare CR reached the stream.
  EXPECT_EQ(sub->body().find('\r'), std::string::npos);
}

TEST_P(PublishEndpointTest, EmptyBodyIsAnEmptyDataEvent) {
  StartServer();
  auto sub = Subscribe("a");
  auto r = Exchange(Post("/publish?topic=a", ""));
  EXPECT_EQ(r->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].data, "");
}

TEST_P(PublishEndpointTest, GetIsMethodNotAllowed) {
  StartServer();
  auto r = Exchange(Raw("GET /publish?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(r->status(), 405);
  EXPECT_EQ(r->header("Allow"), "POST");
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

TEST_P(PublishEndpointTest, BadRequestsAreRefusedAndPublishNothing) {
  StartServer();
  auto sub = Subscribe("a");
  struct Case {
    std::string target;
    std::string body;
    int status;
    std::string message;  // a part of the answer's body
  };
  const std::vector<Case> cases = {
      {"/publish", "x", 400, "missing topic"},
      {"/publish?event=x", "x", 400, "missing topic"},
      {"/publish?topic=a&topic=b", "x", 400, "exactly one topic"},
      {"/publish?topic=a&topic=a", "x", 400, "exactly one topic"},
      {"/publish?topic=a%20b", "x", 400, "bad topic name \"a b\""},
      {"/publish?topic=%7Bx%7D", "x", 400, "bad topic name \"{x}\""},
      {"/publish?topic=", "x", 400, "empty topic"},
      {"/publish?topic=a%ZZ", "x", 400, "percent-encoding"},
      {"/publish?topic=a", "bad \xff\xfe utf-8", 400, "UTF-8"},
      {"/publish?topic=a&event=a%0Ab", "x", 400, ""},
      {"/publish?topic=a&event=a%0Db", "x", 400, ""},
      {"/publish?topic=a&event=a%00b", "x", 400, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    auto r = Exchange(Post(c.target, c.body));
    EXPECT_EQ(r->status(), c.status);
    EXPECT_THAT(r->header("Content-Type"), StartsWith("text/plain"));
    EXPECT_FALSE(r->body().empty());
    EXPECT_THAT(r->body(), HasSubstr(c.message));
  }
  EXPECT_EQ(hub_->stats().events_published, 0u);

  // Nothing of the above reached the subscriber: the next good publish is
  // the first event it sees.
  auto ok = Exchange(Post("/publish?topic=a", "after"));
  EXPECT_EQ(ok->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return !sub->events.empty(); }));
  RunFor(std::chrono::milliseconds(20));
  EXPECT_THAT(sub->datas(), ElementsAre("after"));
}

TEST_P(PublishEndpointTest, BodyOverTheLimitIs413) {
  PublishOptions po;
  po.max_body_bytes = 16;
  StartServer({}, {}, po);
  auto sub = Subscribe("a");

  auto big = Exchange(Post("/publish?topic=a", std::string(17, 'x')));
  EXPECT_EQ(big->status(), 413);
  EXPECT_THAT(big->body(), HasSubstr("17 bytes"));
  EXPECT_THAT(big->body(), HasSubstr("16"));

  auto exact = Exchange(Post("/publish?topic=a", std::string(16, 'y')));
  EXPECT_EQ(exact->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return !sub->events.empty(); }));
  EXPECT_THAT(sub->datas(), ElementsAre(std::string(16, 'y')));
  EXPECT_EQ(hub_->stats().events_published, 1u);
}

TEST_P(PublishEndpointTest, EventLargerThanTheHubLimitIs413) {
  HubOptions ho;
  ho.max_event_bytes = 8;
  StartServer(ho);
  auto r = Exchange(Post("/publish?topic=a", std::string(9, 'x')));
  EXPECT_EQ(r->status(), 413);
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

// --- authorization ---------------------------------------------------------

class PublishAuthTest : public PublishEndpointTest {
 protected:
  void SetUp() override {
    PublishEndpointTest::SetUp();
    PublishOptions po;
    po.bearer_token = "s3cret";
    StartServer({}, {}, po);
  }
};

TEST_P(PublishAuthTest, MissingAuthorizationIs401WithChallenge) {
  auto r = Exchange(Post("/publish?topic=a", "x"));
  EXPECT_EQ(r->status(), 401);
  EXPECT_THAT(r->header("WWW-Authenticate"), StartsWith("Bearer"));
  EXPECT_THAT(r->body(), HasSubstr("Authorization"));
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

TEST_P(PublishAuthTest, WrongTokensAre401) {
  for (const char* value :
       {"Bearer wrong", "Bearer s3cre", "Bearer s3cretX", "Bearer  s3cret",
        "Basic czNjcmV0", "s3cret", "Bearer ", "Bearer"}) {
    SCOPED_TRACE(value);
    auto r = Exchange(Post("/publish?topic=a", "x",
                           std::string("Authorization: ") + value + "\r\n"));
    EXPECT_EQ(r->status(), 401);
    EXPECT_TRUE(r->has_header("WWW-Authenticate"));
  }
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

TEST_P(PublishAuthTest, RightTokenPublishes) {
  auto sub = Subscribe("a");
  auto r = Exchange(
      Post("/publish?topic=a", "one", "Authorization: Bearer s3cret\r\n"));
  EXPECT_EQ(r->status(), 200);
  std::string id = IdFromBody(r->body());
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].last_event_id, id);
  EXPECT_EQ(sub->events[0].data, "one");
}

TEST_P(PublishAuthTest, SchemeIsCaseInsensitive) {
  for (const char* scheme : {"bearer", "BEARER", "BeArEr"}) {
    SCOPED_TRACE(scheme);
    auto r =
        Exchange(Post("/publish?topic=a", "x",
                      std::string("Authorization: ") + scheme + " s3cret\r\n"));
    EXPECT_EQ(r->status(), 200);
  }
  EXPECT_EQ(hub_->stats().events_published, 3u);
}

TEST_P(PublishAuthTest, TokenIsCheckedBeforeTheRequestIsParsed) {
  // A bad request from an unauthenticated client learns nothing but 401.
  auto r = Exchange(Post("/publish?topic=%7Bx%7D", "x"));
  EXPECT_EQ(r->status(), 401);
}

TEST_P(PublishEndpointTest, AuthHookRefusalIsAnswered) {
  PublishOptions po;
  int calls = 0;
  po.auth = [&calls](const Request& req) {
    ++calls;
    EXPECT_EQ(req.method(), "POST");
    EXPECT_EQ(req.path(), "/publish");
    EXPECT_THAT(req.topics(), ElementsAre("a"));
    if (req.query("event") == std::optional<std::string>("admin"))
      return AuthDecision::Deny(403, "admin events are not yours");
    if (!req.header("X-Key"))
      return AuthDecision{401, "who are you", {{"WWW-Authenticate", "Key"}}};
    return AuthDecision::Allow();
  };
  StartServer({}, {}, po);
  auto sub = Subscribe("a");

  auto forbidden =
      Exchange(Post("/publish?topic=a&event=admin", "x", "X-Key: k\r\n"));
  EXPECT_EQ(forbidden->status(), 403);
  EXPECT_THAT(forbidden->body(), HasSubstr("admin events are not yours"));

  auto anonymous = Exchange(Post("/publish?topic=a", "x"));
  EXPECT_EQ(anonymous->status(), 401);
  EXPECT_EQ(anonymous->header("WWW-Authenticate"), "Key");
  EXPECT_THAT(anonymous->body(), HasSubstr("who are you"));

  auto allowed = Exchange(Post("/publish?topic=a", "ok", "X-Key: k\r\n"));
  EXPECT_EQ(allowed->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return !sub->events.empty(); }));
  RunFor(std::chrono::milliseconds(20));
  EXPECT_THAT(sub->datas(), ElementsAre("ok"));
  EXPECT_EQ(calls, 3);
}

// The hook is an authorization point: like the subscribe endpoint's, it
// should only see topic names the library accepts, not raw client bytes
// (CR/LF/NUL in a hook's log line, huge names in a lookup).
TEST_P(PublishEndpointTest, AuthHookSeesOnlyValidTopics) {
  PublishOptions po;
  std::vector<std::string> seen;
  po.auth = [&seen](const Request& req) {
    for (const std::string& t : req.topics()) seen.push_back(t);
    return AuthDecision::Allow();
  };
  StartServer({}, {}, po);
  for (const char* target : {"/publish?topic=a%0D%0Ab", "/publish?topic=a%00b",
                             "/publish?topic=%7Bx%7D"}) {
    SCOPED_TRACE(target);
    auto r = Exchange(Post(target, "x"));
    EXPECT_EQ(r->status(), 400);
  }
  EXPECT_THAT(seen, IsEmpty()) << "the hook saw unvalidated topic names";
}

TEST_P(PublishEndpointTest, AuthHookStatusOtherThan401IsForbidden) {
  PublishOptions po;
  po.auth = [](const Request&) { return AuthDecision::Deny(418, ""); };
  StartServer({}, {}, po);
  auto r = Exchange(Post("/publish?topic=a", "x"));
  EXPECT_EQ(r->status(), 403);
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

// The id is assigned by a later callback than the one that read the
// request. The hook runs inside the request's handler and breaks the loop
// there, so the test acts in between.
TEST_P(PublishEndpointTest, ClientGoneBeforeTheIdIsAssigned) {
  PublishOptions po;
  int handled = 0;
  po.auth = [this, &handled](const Request&) {
    ++handled;
    event_base_loopbreak(base_);
    return AuthDecision::Allow();
  };
  StartServer({}, {}, po);
  auto sub = Subscribe("a");
  auto gone = Post("/publish?topic=a", "orphan");
  ASSERT_TRUE(RunUntil([&] { return handled == 1; }));
  EXPECT_EQ(hub_->stats().events_published, 0u);  // not yet
  gone->Reset();
  // The event is still published once; the reply has nowhere to go.
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 1; }));
  EXPECT_EQ(sub->events[0].data, "orphan");
  // The server is unharmed.
  auto next = Exchange(Post("/publish?topic=a", "next"));
  EXPECT_EQ(next->status(), 200);
  ASSERT_TRUE(RunUntil([&] { return sub->events.size() == 2; }));
  EXPECT_EQ(hub_->stats().events_published, 2u);
}

TEST_P(PublishEndpointTest, ServerFreedWhileAPublishIsPending) {
  if (adapter_ == Adapter::kEvhtp)
    GTEST_SKIP() << "libevhtp 1.2.18's evhtp_free leaves connections open: "
                    "with evhtp the Hub goes first (see evsse/evhtp.h)";
  PublishOptions po;
  int handled = 0;
  po.auth = [this, &handled](const Request&) {
    ++handled;
    event_base_loopbreak(base_);
    return AuthDecision::Allow();
  };
  StartServer({}, {}, po);
  auto pending = Post("/publish?topic=a", "late");
  ASSERT_TRUE(RunUntil([&] { return handled == 1; }));
  EXPECT_EQ(hub_->stats().events_published, 0u);  // not yet
  // The documented teardown order: server first (its connections close),
  // then the Hub (the pending publish is cancelled). Nothing may touch the
  // freed request (ASan checks) and the client gets no 200.
  FreeServer();
  hub_.reset();
  for (int i = 0; i < 200 && !pending->closed(); ++i) {
    event_base_loop(base_, EVLOOP_NONBLOCK);
    pending->Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(pending->closed());
  EXPECT_NE(pending->status(), 200);
}

TEST_P(PublishEndpointTest, EndpointWithoutAuthenticationIsRefused) {
  StartServer();
  Result<Handler*> h = hub_->AddPublishEndpoint(PublishOptions{});
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(h.status().message(), HasSubstr("bearer_token"));

  Status s = MountPublishAt("/open", {});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  // Nothing was mounted there.
  auto r = Exchange(Post("/open?topic=a", "x"));
  EXPECT_EQ(r->status(), 404);

  PublishOptions open;
  open.allow_unauthenticated = true;
  EXPECT_TRUE(hub_->AddPublishEndpoint(open).ok());
  PublishOptions with_token;
  with_token.bearer_token = "t";
  EXPECT_TRUE(hub_->AddPublishEndpoint(with_token).ok());
  PublishOptions with_hook;
  with_hook.auth = [](const Request&) { return AuthDecision::Allow(); };
  EXPECT_TRUE(hub_->AddPublishEndpoint(with_hook).ok());
  PublishOptions no_body = open;
  no_body.max_body_bytes = 0;
  EXPECT_FALSE(hub_->AddPublishEndpoint(no_body).ok());
}

INSTANTIATE_TEST_SUITE_P(Adapters, PublishEndpointTest, EveryAdapter(),
                         AdapterName);
INSTANTIATE_TEST_SUITE_P(Adapters, PublishAuthTest, EveryAdapter(),
                         AdapterName);

}  // namespace
}  // namespace evsse::testing
