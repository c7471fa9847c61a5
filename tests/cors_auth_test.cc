// CORS and the authorization hook of the subscribe endpoint, on a real
// evhttp server: which origins may stream, what a preflight answers, and that
// a refused request never sees a byte of a topic's events.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_fixture.h"

namespace evsse::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kApp[] = "https://app.example";

class CorsAuthTest : public OnEveryAdapter<HttpFixture> {
 protected:
  // Complete: a whole non-streamed response arrived.
  static bool Complete(const TestClient& c) {
    if (!c.has_head()) return false;
    if (c.closed() || c.status() == 204 || c.status() == 304) return true;
    if (!c.has_header("Content-Length")) return false;
    return c.body().size() >= std::stoul(c.header("Content-Length"));
  }

  // Answer waits for a whole (non-streamed) response.
  void Answer(TestClient& c) {
    EXPECT_TRUE(RunUntil([&] { return Complete(c); }))
        << "status " << c.status() << " body " << c.body();
  }

  // Streaming waits until a 200 stream sent its first bytes.
  void Streaming(TestClient& c) {
    ASSERT_TRUE(RunUntil([&] { return c.retry.has_value(); }))
        << "status " << c.status() << " body " << c.body();
    EXPECT_EQ(c.status(), 200);
  }

  std::unique_ptr<TestClient> Preflight(const std::string& origin,
                                        const std::string& more = "") {
    return Raw(
        "OPTIONS /events?topic=a HTTP/1.1\r\nHost: x\r\nOrigin: " + origin +
        "\r\nAccess-Control-Request-Method: GET\r\n" + more + "\r\n");
  }

  static StreamOptions AppCors() {
    StreamOptions so;
    so.cors_origins = {kApp};
    so.cors_credentials = true;
    return so;
  }
};

// --- CORS --------------------------------------------------------------------

TEST_P(CorsAuthTest, ListedOriginIsEchoedWithCredentials) {
  StartServer({}, AppCors());
  auto c = Get("/events?topic=a", std::string("Origin: ") + kApp + "\r\n");
  Streaming(*c);
  EXPECT_EQ(c->header("Access-Control-Allow-Origin"), kApp);
  EXPECT_EQ(c->header("Access-Control-Allow-Credentials"), "true");
  EXPECT_EQ(c->header("Vary"), "Origin");
  EXPECT_EQ(c->header("Content-Type"), "text/event-stream; charset=utf-8");

  std::string id = Publish("a", "hi");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  EXPECT_EQ(c->events[0].last_event_id, id);
}

TEST_P(CorsAuthTest, OtherOriginIsForbiddenAndGetsNoStream) {
  StartServer({}, AppCors());
  for (const char* origin :
       {"https://evil.example", "https://app.example.evil",
        "http://app.example", "https://APP.example", "null"}) {
    SCOPED_TRACE(origin);
    auto c = Get("/events?topic=a", std::string("Origin: ") + origin + "\r\n");
    Answer(*c);
    EXPECT_EQ(c->status(), 403);
    EXPECT_FALSE(c->has_header("Access-Control-Allow-Origin"));
    EXPECT_FALSE(c->has_header("Access-Control-Allow-Credentials"));
    EXPECT_EQ(c->header("Vary"), "Origin");
    EXPECT_THAT(c->header("Content-Type"), Not(HasSubstr("event-stream")));
    EXPECT_THAT(c->body(), HasSubstr("origin not allowed"));
  }
  EXPECT_EQ(hub_->stats().connections_total, 0u);
  EXPECT_EQ(hub_->stats().connections_active, 0u);
  EXPECT_EQ(hub_->stats().requests_rejected, 5u);
}

TEST_P(CorsAuthTest, NoOriginStreamsWithVary) {
  StartServer({}, AppCors());
  auto c = Get("/events?topic=a");
  Streaming(*c);
  EXPECT_EQ(c->header("Vary"), "Origin");
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Credentials"));
}

TEST_P(CorsAuthTest, NeverAnswersStarWithCredentials) {
  StreamOptions so = AppCors();
  so.cors_origins.push_back("https://other.example");
  StartServer({}, so);
  for (const char* origin : {kApp, "https://other.example"}) {
    auto c = Get("/events?topic=a", std::string("Origin: ") + origin + "\r\n");
    Streaming(*c);
    EXPECT_EQ(c->header("Access-Control-Allow-Origin"), origin);
    EXPECT_EQ(c->header("Access-Control-Allow-Credentials"), "true");
  }
}

TEST_P(CorsAuthTest, Preflight) {
  StartServer({}, AppCors());
  auto c = Preflight(kApp, "Access-Control-Request-Headers: last-event-id\r\n");
  Answer(*c);
  EXPECT_EQ(c->status(), 204);
  EXPECT_EQ(c->header("Access-Control-Allow-Origin"), kApp);
  EXPECT_EQ(c->header("Access-Control-Allow-Credentials"), "true");
  EXPECT_EQ(c->header("Vary"), "Origin");
  EXPECT_THAT(c->header("Access-Control-Allow-Methods"), HasSubstr("GET"));
  EXPECT_THAT(c->header("Access-Control-Allow-Headers"),
              HasSubstr("last-event-id"));
  EXPECT_EQ(c->header("Access-Control-Max-Age"), "600");
  RunFor(std::chrono::milliseconds(20));
  EXPECT_THAT(c->body(), IsEmpty());
  EXPECT_EQ(hub_->stats().connections_total, 0u);
}

TEST_P(CorsAuthTest, PreflightFromBadOriginIsForbidden) {
  StartServer({}, AppCors());
  auto c = Preflight("https://evil.example");
  Answer(*c);
  EXPECT_EQ(c->status(), 403);
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Methods"));
}

TEST_P(CorsAuthTest, WildcardWithoutCredentials) {
  StreamOptions so;
  so.cors_origins = {"*"};
  StartServer({}, so);
  auto c = Get("/events?topic=a", "Origin: https://anyone.example\r\n");
  Streaming(*c);
  EXPECT_EQ(c->header("Access-Control-Allow-Origin"), "*");
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Credentials"));

  auto p = Preflight("https://anyone.example");
  Answer(*p);
  EXPECT_EQ(p->status(), 204);
  EXPECT_EQ(p->header("Access-Control-Allow-Origin"), "*");
}

TEST_P(CorsAuthTest, WildcardWithCredentialsIsRefusedAtMount) {
  StartServer();
  StreamOptions so;
  so.cors_origins = {"*"};
  so.cors_credentials = true;
  Result<Handler*> h = hub_->AddStreamEndpoint(so);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("credentials"));

  Status s = MountStream("/cors", so);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("\"*\""));
  auto c = Get("/cors?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 404);  // nothing was mounted
}

TEST_P(CorsAuthTest, NoCorsConfiguredSendsNoCorsHeaders) {
  StartServer();
  auto c = Get("/events?topic=a", "Origin: https://evil.example\r\n");
  ASSERT_TRUE(RunUntil([&] { return c->has_head(); }));
  // Without a CORS list a browser must not be able to read the stream of
  // another origin: no Access-Control-Allow-Origin, ever.
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Origin"));
  EXPECT_FALSE(c->has_header("Access-Control-Allow-Credentials"));
}

// --- authorization hook ------------------------------------------------------

TEST_P(CorsAuthTest, HookRefusesWith401AndMessage) {
  StreamOptions so;
  so.auth = [](const Request&) {
    return AuthDecision{401, "token expired", {{"WWW-Authenticate", "Bearer"}}};
  };
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 401);
  EXPECT_EQ(c->header("WWW-Authenticate"), "Bearer");
  EXPECT_THAT(c->body(), HasSubstr("token expired"));
  EXPECT_THAT(c->header("Content-Type"), Not(HasSubstr("event-stream")));
  EXPECT_EQ(hub_->stats().connections_total, 0u);
  EXPECT_EQ(hub_->stats().requests_rejected, 1u);
}

TEST_P(CorsAuthTest, HookRefusesWith403) {
  StreamOptions so;
  so.auth = [](const Request&) {
    return AuthDecision::Deny(403, "not your topic");
  };
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 403);
  EXPECT_THAT(c->body(), HasSubstr("not your topic"));
  EXPECT_EQ(hub_->stats().connections_total, 0u);
}

TEST_P(CorsAuthTest, HookStopsClientWith204AndNoBody) {
  StreamOptions so;
  so.auth = [](const Request&) { return AuthDecision::Deny(204, "ignored"); };
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 204);
  RunFor(std::chrono::milliseconds(20));
  EXPECT_THAT(c->body(), IsEmpty());
  EXPECT_EQ(hub_->stats().connections_total, 0u);
}

TEST_P(CorsAuthTest, HookOtherStatusIsForbiddenNever5xx) {
  // A browser EventSource never reconnects after a 5xx: the hook cannot
  // produce one.
  StreamOptions so;
  so.auth = [](const Request&) { return AuthDecision::Deny(503, "busy"); };
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 403);
}

TEST_P(CorsAuthTest, HookSeesTopicsHeadersAndQueryThenAllows) {
  StreamOptions so;
  int calls = 0;
  so.auth = [&calls](const Request& req) {
    ++calls;
    EXPECT_EQ(req.method(), "GET");
    EXPECT_EQ(req.path(), "/events");
    EXPECT_THAT(req.topics(), ElementsAre("a", "b"));
    EXPECT_STREQ(req.header("Authorization"), "Bearer abc");
    EXPECT_STREQ(req.header("authorization"), "Bearer abc");
    EXPECT_EQ(req.header("X-Absent"), nullptr);
    EXPECT_EQ(req.query("access_token"), std::optional<std::string>("t o/k"));
    EXPECT_EQ(req.query("missing"), std::nullopt);
    EXPECT_THAT(req.peer(), HasSubstr("127.0.0.1:"));
    if (req.query("access_token") != std::optional<std::string>("t o/k") ||
        !req.header("Authorization"))
      return AuthDecision::Deny(401, "no");
    return AuthDecision::Allow();
  };
  StartServer({}, so);
  auto c = Get("/events?topic=a&access_token=t+o%2Fk&topic=b",
               "Authorization: Bearer abc\r\n");
  Streaming(*c);
  EXPECT_EQ(calls, 1);
  Publish("a", "on a");
  Publish("b", "on b");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 2; }));
  EXPECT_THAT(c->datas(), ElementsAre("on a", "on b"));
}

TEST_P(CorsAuthTest, ForgedCursorForForbiddenTopicReplaysNothing) {
  StreamOptions so;
  so.auth = [](const Request& req) {
    for (const std::string& t : req.topics())
      if (t == "secret") return AuthDecision::Deny(403, "forbidden topic");
    return AuthDecision::Allow();
  };
  StartServer({}, so);
  std::string id1 = Publish("secret", "secret-data-1");
  std::string id2 = Publish("secret", "secret-data-2");
  std::string id3 = Publish("secret", "secret-data-3");
  ASSERT_FALSE(id1.empty());

  for (const std::string& extra :
       {"Last-Event-ID: " + id1 + "\r\n", std::string()}) {
    SCOPED_TRACE(extra);
    std::string target = "/events?topic=secret";
    if (extra.empty()) target += "&lastEventId=" + id1;
    auto c = Get(target, extra);
    Answer(*c);
    RunFor(std::chrono::milliseconds(30));
    EXPECT_EQ(c->status(), 403);
    EXPECT_THAT(c->body(), HasSubstr("forbidden topic"));
    EXPECT_THAT(c->body(), Not(HasSubstr("secret-data")));
    EXPECT_THAT(c->body(), Not(HasSubstr("data:")));
    EXPECT_THAT(c->events, IsEmpty());
  }
  EXPECT_EQ(hub_->stats().replays, 0u);
  EXPECT_EQ(hub_->stats().replayed_events, 0u);
  EXPECT_EQ(hub_->stats().connections_total, 0u);

  // Control: the same resume on an allowed topic does replay, so the refusal
  // above is the hook's doing.
  std::string open1 = Publish("open", "open-1");
  Publish("open", "open-2");
  auto ok = Get("/events?topic=open", "Last-Event-ID: " + open1 + "\r\n");
  Streaming(*ok);
  ASSERT_TRUE(RunUntil([&] { return ok->events.size() == 1; }));
  EXPECT_THAT(ok->datas(), ElementsAre("open-2"));
}

TEST_P(CorsAuthTest, OneForbiddenTopicRefusesTheWholeRequest) {
  StreamOptions so;
  std::vector<std::string> seen;
  so.auth = [&seen](const Request& req) {
    seen = req.topics();
    for (const std::string& t : req.topics())
      if (t == "secret") return AuthDecision::Deny(403, "forbidden topic");
    return AuthDecision::Allow();
  };
  StartServer({}, so);
  auto c = Get("/events?topic=public&topic=secret");
  Answer(*c);
  EXPECT_EQ(c->status(), 403);
  EXPECT_THAT(seen, ElementsAre("public", "secret"));
  EXPECT_EQ(hub_->stats().connections_total, 0u);

  // Nothing published afterwards reaches the refused client.
  Publish("public", "p");
  Publish("secret", "s");
  RunFor(std::chrono::milliseconds(30));
  EXPECT_THAT(c->events, IsEmpty());
  EXPECT_THAT(c->body(), Not(HasSubstr("data:")));
}

TEST_P(CorsAuthTest, HookRunsAfterCorsCheck) {
  StreamOptions so = AppCors();
  int calls = 0;
  so.auth = [&calls](const Request&) {
    ++calls;
    return AuthDecision::Allow();
  };
  StartServer({}, so);
  auto bad = Get("/events?topic=a", "Origin: https://evil.example\r\n");
  Answer(*bad);
  EXPECT_EQ(bad->status(), 403);
  EXPECT_EQ(calls, 0);
  auto good = Get("/events?topic=a", std::string("Origin: ") + kApp + "\r\n");
  Streaming(*good);
  EXPECT_EQ(calls, 1);
}

INSTANTIATE_TEST_SUITE_P(Adapters, CorsAuthTest, EveryAdapter(), AdapterName);

}  // namespace
}  // namespace evsse::testing

namespace evsse::testing {
namespace {

// A hook that throws must not take the server down (no exception may cross
// a libevent callback): the request is refused with 403.
TEST_P(CorsAuthTest, ThrowingHookIsA403) {
  StreamOptions so;
  so.auth = [](const Request&) -> AuthDecision {
    throw std::runtime_error("boom");
  };
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  Answer(*c);
  EXPECT_EQ(c->status(), 403);
  auto again = Get("/events?topic=a");
  Answer(*again);
  EXPECT_EQ(again->status(), 403);
}

}  // namespace
}  // namespace evsse::testing
