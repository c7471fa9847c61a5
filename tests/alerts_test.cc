// The alert server (examples/alerts): the real evsse-alerts binary, started
// with a temporary config on a free loopback port (listen 127.0.0.1:0; the
// port is read back from its log), driven over raw sockets. Every wait is
// bounded; the test kills only the child it started, by pid.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "alerts_process.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;
using Server = AlertsServer;

constexpr const char* kToken = kAlertsToken;

// IsIsoTime: 2024-05-01T12:00:00.123Z
bool IsIsoTime(const std::string& s) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (s.size() != shape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i]))
                        : s[i] != shape[i])
      return false;
  return true;
}

// Conf: a test configuration; `server` lines go into the server block,
// `stream` lines into the subscribe endpoint.
std::string Conf(const std::string& server = "", const std::string& stream = "",
                 const std::string& token = kToken) {
  return "shutdown_timeout 1s;\n"
         "server {\n"
         "  listen 127.0.0.1:0;\n" +
         (token.empty() ? "" : "  publish_token " + token + ";\n") +
         "  max_alert_bytes 1k;\n"
         "  max_title_length 40;\n" +
         server +
         "  endpoint subscribe /alerts/stream {\n"
         "    heartbeat 15s;\n" +
         stream +
         "  }\n"
         "  endpoint metrics /metrics { }\n"
         "  endpoint status /status { }\n"
         "}\n";
}

class AlertsTest : public ::testing::Test {
 protected:
  void SetUp() override { std::signal(SIGPIPE, SIG_IGN); }

  void Start(const std::string& conf, std::vector<std::string> env = {}) {
    server_ = std::make_unique<Server>(conf, std::move(env));
    ASSERT_TRUE(server_->Started());
  }

  bool Poll(const std::vector<TestClient*>& clients,
            const std::function<bool()>& pred,
            milliseconds timeout = milliseconds(5000)) {
    return PollClients(clients, pred, timeout);
  }

  Response Call(const std::string& method, const std::string& target,
                const std::string& headers = "", const std::string& body = "") {
    return CallServer(server_->port(), method, target, headers, body);
  }

  Response PostAlert(const std::string& json, const std::string& token = kToken,
                     const std::string& type = "application/json") {
    return PostAlertTo(server_->port(), json, token, type);
  }

  static std::string Alert(const std::string& severity, const std::string& team,
                           const std::string& title = "disk full",
                           const std::string& more = "") {
    return AlertJson(severity, team, title, more);
  }

  std::string Publish(const std::string& severity, const std::string& team,
                      const std::string& more = "") {
    Response r = PostAlert(Alert(severity, team, "t", more));
    EXPECT_EQ(r.status, 200) << r.body;
    Json j = r.json();
    return j.is_object() && j.contains("id") ? j["id"].get<std::string>() : "";
  }

  std::unique_ptr<TestClient> Stream(const std::string& query,
                                     const std::string& headers = "") {
    return OpenStream(server_->port(), query, headers);
  }

  // Streaming waits until a stream answered 200 and sent its first bytes.
  void Streaming(TestClient& c) {
    ASSERT_TRUE(Poll({&c}, [&] { return c.retry.has_value(); }))
        << "status " << c.status() << " body " << c.body();
    EXPECT_EQ(c.status(), 200);
  }

  // Refused waits for a complete non-stream answer of a stream request.
  int Refused(TestClient& c) {
    EXPECT_TRUE(Poll({&c},
                     [&] {
                       return c.has_head() && c.status() != 200 &&
                              (c.closed() || !c.body().empty());
                     }))
        << "status " << c.status();
    return c.status();
  }

  std::unique_ptr<Server> server_;
};

// --- Publish and subscribe ---------------------------------------------------

TEST_F(AlertsTest, PublishReachesSubscribersWithTheSeverityAsEventType) {
  Start(Conf());
  auto ops = Stream("topic=ops");
  auto both = Stream("topic=ops&topic=web");
  Streaming(*ops);
  Streaming(*both);

  Response r = PostAlert(
      R"({"severity":"critical","title":"disk full","body":"/var at 99%",)"
      R"("team":"ops"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.headers["Content-Type"], HasSubstr("application/json"));
  std::string id = r.json()["id"];
  std::string web_id = Publish("info", "web");

  ASSERT_TRUE(
      Poll({ops.get(), both.get()}, [&] { return both->events.size() == 2; }));
  ASSERT_EQ(ops->events.size(), 1u);  // not web's alert
  const StreamParser::Event& e = ops->events[0];
  EXPECT_EQ(e.type, "critical");
  EXPECT_EQ(e.last_event_id, id);
  Json data = Json::parse(e.data);
  EXPECT_EQ(data["severity"], "critical");
  EXPECT_EQ(data["title"], "disk full");
  EXPECT_EQ(data["body"], "/var at 99%");
  EXPECT_EQ(data["team"], "ops");
  EXPECT_TRUE(IsIsoTime(data["ts"].get<std::string>())) << data["ts"];
  EXPECT_FALSE(data.contains("dedup_key"));
  EXPECT_EQ(both->events[0].type, "critical");
  EXPECT_EQ(both->events[1].type, "info");
  EXPECT_EQ(Json::parse(both->events[1].data)["team"], "web");
  EXPECT_FALSE(web_id.empty());
}

TEST_F(AlertsTest, ResumeWithLastEventIdReplaysWhatWasMissed) {
  Start(Conf());
  std::string id1 = Publish("info", "ops");
  std::string id2 = Publish("warning", "ops");
  std::string id3 = Publish("critical", "ops");
  auto c = Stream("topic=ops", "Last-Event-ID: " + id1 + "\r\n");
  ASSERT_TRUE(Poll({c.get()}, [&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->ids(), (std::vector<std::string>{id2, id3}));
  EXPECT_EQ(c->events[0].type, "warning");
  EXPECT_EQ(c->events[1].type, "critical");
  // The query parameter works for clients that cannot set headers.
  auto q = Stream("topic=ops&lastEventId=" + id2);
  ASSERT_TRUE(Poll({q.get()}, [&] { return q->events.size() == 1; }));
  EXPECT_EQ(q->events[0].last_event_id, id3);
}

// --- Refused alerts
// ------------------------------------------------------------

TEST_F(AlertsTest, BadRequestsAreRefusedWithClearJsonErrors) {
  Start(Conf());
  std::string ok = Alert("info", "ops");

  Response r = PostAlert(ok, kToken, "text/plain");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(r.error(), "Content-Type must be application/json");
  EXPECT_EQ(PostAlert(ok, kToken, "").status, 415);
  EXPECT_EQ(PostAlert(ok, kToken, "application/json; charset=latin1").status,
            415);
  EXPECT_EQ(PostAlert(ok, kToken, "Application/JSON; charset=UTF-8").status,
            200);

  std::string big = Alert("info", "ops", std::string(1100, 'x'));
  r = PostAlert(big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.error(), "body is " + std::to_string(big.size()) +
                           " bytes; the limit is 1024");

  struct Case {
    std::string body, error;
  };
  std::vector<Case> cases = {
      {"{\"severity\":", "body is not valid JSON (at byte 13)"},
      {"not json", "body is not valid JSON (at byte 2)"},
      {"", "empty body: expected a JSON object"},
      {"[1,2]", "the alert must be a JSON object"},
      {Alert("info", "ops", "t", R"(,"extra":1)"),
       "unknown field \"extra\" (fields: severity, title, body, team, "
       "dedup_key)"},
      {Alert("info", "ops", "t", R"(,"team":"web")"),
       "duplicate field \"team\""},
      {R"({"severity":"info","title":5,"body":"b","team":"ops"})",
       "field \"title\" must be a string"},
      {R"({"severity":"info","title":{"a":1},"body":"b","team":"ops"})",
       "fields must be strings, not objects or arrays"},
      {R"({"severity":"info","body":"b","team":"ops"})",
       "missing field \"title\""},
      {Alert("fatal", "ops"),
       "field \"severity\" must be one of info, warning, critical"},
      {Alert("info", "ops", ""), "field \"title\" must not be empty"},
      {Alert("info", "ops", std::string(41, 't')),
       "field \"title\" is longer than 40 bytes"},
      {Alert("info", "ops team"),
       "field \"team\": team must be 1 to 64 characters of A-Z a-z 0-9 . _ "
       "-"},
      {Alert("info", "ops", "t", R"(,"dedup_key":"")"),
       "field \"dedup_key\" must not be empty"},
      // Found by tests/fuzz/alert_fuzz: nlohmann throws out_of_range, not
      // parse_error, for a number beyond a double; it ended the server.
      {Alert("info", "ops", "t", R"(,"n":1e999)"),
       "body is not valid JSON (a number is out of range)"},
      {"[-1e400]", "body is not valid JSON (a number is out of range)"},
      // Found by tests/fuzz/alert_fuzz: a field name is quoted as printable
      // ASCII (DEL and non-ASCII were copied raw into the message).
      {Alert("info", "ops", "t", ",\"k\x7f\xc3\xa9\":1"),
       "unknown field \"k\\u007f\\u00e9\" (fields: severity, title, body, "
       "team, dedup_key)"},
  };
  for (const Case& c : cases) {
    r = PostAlert(c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(r.error(), c.error) << c.body;
  }
  r = Call("GET", "/alerts");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["Allow"], "POST");
  EXPECT_EQ(Call("GET", "/nothing/here").status, 404);
}

TEST_F(AlertsTest, PublishingNeedsTheBearerToken) {
  Start(Conf());
  Response r = PostAlert(Alert("info", "ops"), "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers["WWW-Authenticate"], "Bearer realm=\"alerts\"");
  EXPECT_EQ(PostAlert(Alert("info", "ops"), "wrong-token-0123456789").status,
            401);
  EXPECT_EQ(PostAlert(Alert("info", "ops"), std::string(kToken) + "x").status,
            401);
  r = Call("POST", "/alerts",
           "Authorization: Basic " + std::string(kToken) +
               "\r\nContent-Type: application/json\r\n",
           Alert("info", "ops"));
  EXPECT_EQ(r.status, 401);
  // 401 comes before any look at the body.
  EXPECT_EQ(PostAlert("not json", "", "text/plain").status, 401);
}

TEST_F(AlertsTest, TheTokenMayComeFromTheEnvironment) {
  Start(Conf("", "", ""), {"ALERTS_TOKEN=env-token-0123456789abc"});
  EXPECT_EQ(PostAlert(Alert("info", "ops"), "env-token-0123456789abc").status,
            200);
  EXPECT_EQ(PostAlert(Alert("info", "ops")).status, 401);
}

TEST_F(AlertsTest, NoTokenOrABadConfigStopsTheStart) {
  Server none(Conf("", "", ""));
  EXPECT_EQ(none.ExitStatus(), 1);
  EXPECT_THAT(none.Log(), HasSubstr("no publish token"));
  Server bad(Conf("  heartbeat 1s;\n"));
  EXPECT_EQ(bad.ExitStatus(), 1);
  EXPECT_THAT(bad.Log(), HasSubstr("alerts.conf:7: directive \"heartbeat\": "
                                   "not allowed in the server block"));
}

TEST_F(AlertsTest, CorsOriginsAreCheckedAndThePreflightIsAnswered) {
  Server bad(Conf("", "    cors_origins https://app.example.com/;\n"));
  EXPECT_EQ(bad.ExitStatus(), 1);
  EXPECT_THAT(bad.Log(),
              HasSubstr("alerts.conf:9: directive \"cors_origins\": invalid "
                        "origin: trailing slash (expected "
                        "scheme://host[:port]"));
  EXPECT_THAT(bad.Log(), HasSubstr("\"https://app.example.com/\""));

  Start(Conf("", "    cors_origins https://app.example.com;\n"));
  Response r = Call("OPTIONS", "/alerts/stream",
                    "Origin: https://app.example.com\r\n"
                    "Access-Control-Request-Method: GET\r\n"
                    "Access-Control-Request-Headers: last-event-id\r\n");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers["Access-Control-Allow-Origin"],
            "https://app.example.com");
  EXPECT_THAT(r.headers["Access-Control-Allow-Methods"], HasSubstr("GET"));
  EXPECT_THAT(r.headers["Access-Control-Allow-Headers"],
              HasSubstr("last-event-id"));
  Response other = Call("OPTIONS", "/alerts/stream",
                        "Origin: https://evil.example\r\n"
                        "Access-Control-Request-Method: GET\r\n");
  EXPECT_EQ(other.status, 403);
}

// --- Subscriber authorization
// ----------------------------------------------------

TEST_F(AlertsTest, SubscriberTokensGateStreamsAndRecentAlerts) {
  Start(
      Conf("  subscriber_auth on;\n"
           "  subscriber_token reader-ops-0123456789 ops;\n"
           "  subscriber_token reader-all-0123456789 \"*\";\n"));
  auto none = Stream("topic=ops");
  auto unknown = Stream("topic=ops&access_token=nope");
  auto wrong_team =
      Stream("topic=web", "Cookie: alerts_token=reader-ops-0123456789\r\n");
  auto one_bad =
      Stream("topic=ops&topic=web&access_token=reader-ops-0123456789");
  EXPECT_EQ(Refused(*none), 401);
  EXPECT_THAT(none->body(), HasSubstr("missing token"));
  EXPECT_EQ(Refused(*unknown), 401);
  EXPECT_EQ(Refused(*wrong_team), 403);
  EXPECT_THAT(wrong_team->body(), HasSubstr("may not read team \"web\""));
  EXPECT_EQ(Refused(*one_bad), 403);

  auto cookie =
      Stream("topic=ops",
             "Cookie: theme=dark; alerts_token=reader-ops-0123456789\r\n");
  auto query = Stream("topic=ops&access_token=reader-ops-0123456789");
  auto all = Stream("topic=web&topic=ops&access_token=reader-all-0123456789");
  Streaming(*cookie);
  Streaming(*query);
  Streaming(*all);
  std::string id = Publish("warning", "ops");
  ASSERT_TRUE(Poll({cookie.get(), query.get(), all.get()}, [&] {
    return cookie->events.size() == 1 && query->events.size() == 1 &&
           all->events.size() == 1;
  }));
  EXPECT_EQ(cookie->events[0].last_event_id, id);

  EXPECT_EQ(Call("GET", "/alerts/recent?topic=ops").status, 401);
  EXPECT_EQ(
      Call("GET", "/alerts/recent?topic=web&access_token=reader-ops-0123456789")
          .status,
      403);
  Response r = Call(
      "GET", "/alerts/recent?topic=ops&access_token=reader-ops-0123456789");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["alerts"][0]["id"], id);

  // Secrets never reach the log: not the publish token, not a subscriber
  // token from a cookie or from the query.
  std::string log = server_->Log();
  EXPECT_THAT(log, Not(HasSubstr(kToken)));
  EXPECT_THAT(log, Not(HasSubstr("reader-ops-0123456789")));
  EXPECT_THAT(log, Not(HasSubstr("reader-all-0123456789")));
  EXPECT_THAT(log, HasSubstr("access_token=REDACTED"));
  EXPECT_THAT(log, HasSubstr("msg=stream method=GET path=/alerts/stream "
                             "topics=web status=403"));
}

// --- Dedup and recent alerts
// --------------------------------------------------------

TEST_F(AlertsTest, ARepeatedDedupKeyAnswersTheFirstIdWithoutPublishing) {
  Start(Conf("  dedup_window 700ms;\n"));
  auto c = Stream("topic=ops");
  Streaming(*c);
  std::string key = R"(,"dedup_key":"disk-var")";
  Response first = PostAlert(Alert("critical", "ops", "t", key));
  Response again = PostAlert(Alert("critical", "ops", "t", key));
  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(again.status, 200);
  std::string id = first.json()["id"];
  EXPECT_EQ(again.json()["id"], id);
  EXPECT_EQ(again.json()["duplicate"], true);
  // Another team with the same key is another alert.
  std::string web = Publish("critical", "web", key);
  EXPECT_NE(web, id);
  ASSERT_TRUE(Poll({c.get()}, [&] { return c->events.size() == 1; }));
  // After the window the key publishes again.
  std::this_thread::sleep_for(milliseconds(800));
  std::string later = Publish("critical", "ops", key);
  EXPECT_NE(later, id);
  ASSERT_TRUE(Poll({c.get()}, [&] { return c->events.size() == 2; }));
  EXPECT_EQ(c->events[1].last_event_id, later);
  EXPECT_EQ(Json::parse(c->events[1].data)["dedup_key"], "disk-var");
}

TEST_F(AlertsTest, RecentAlertsAreKeptPerTeamOldestFirst) {
  Start(Conf("  recent_alerts 3;\n"));
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Publish("info", "ops"));
  std::string web = Publish("warning", "web");
  Response r = Call("GET", "/alerts/recent?topic=ops");
  ASSERT_EQ(r.status, 200) << r.body;
  Json alerts = r.json()["alerts"];
  ASSERT_EQ(alerts.size(), 3u);  // recent_alerts per team
  EXPECT_EQ(alerts[0]["id"], ids[1]);
  EXPECT_EQ(alerts[2]["id"], ids[3]);
  EXPECT_EQ(alerts[2]["severity"], "info");
  r = Call("GET", "/alerts/recent?topic=ops&topic=web&limit=2");
  alerts = r.json()["alerts"];
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0]["id"], ids[3]);
  EXPECT_EQ(alerts[1]["id"], web);
  EXPECT_EQ(Call("GET", "/alerts/recent").status, 400);
  EXPECT_EQ(Call("GET", "/alerts/recent?topic=ops&limit=0").status, 400);
  EXPECT_EQ(Call("GET", "/alerts/recent?topic=ops&limit=4").status, 400);
  EXPECT_EQ(Call("GET", "/alerts/recent?topic=a%20b").status, 400);
  EXPECT_EQ(Call("GET", "/alerts/recent?topic=nobody").json()["alerts"].size(),
            0u);
}

// --- Metrics, status, page
// ------------------------------------------------------

TEST_F(AlertsTest, MetricsArePrometheusTextWithSaneValues) {
  Start(Conf());
  auto c = Stream("topic=ops");
  Streaming(*c);
  Publish("critical", "ops");
  ASSERT_TRUE(Poll({c.get()}, [&] { return c->events.size() == 1; }));
  PostAlert("nope");
  Response r = Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["Content-Type"],
            "text/plain; version=0.0.4; charset=utf-8");
  auto m = ParseMetrics(r.body);
  for (const char* name :
       {"evsse_connections_active", "evsse_connections_total",
        "evsse_events_published_total", "evsse_events_delivered_total",
        "evsse_slow_consumer_closes_total", "evsse_stall_closes_total",
        "evsse_replays_total", "evsse_gaps_total", "evsse_heartbeats_total",
        "evsse_redis_up"}) {
    EXPECT_TRUE(m.count(name)) << name;
    EXPECT_THAT(r.body, HasSubstr(std::string("# HELP ") + name + " "));
    EXPECT_THAT(r.body, HasSubstr(std::string("# TYPE ") + name + " "));
  }
  EXPECT_THAT(r.body, HasSubstr("# TYPE evsse_connections_active gauge\n"));
  EXPECT_THAT(r.body,
              HasSubstr("# TYPE evsse_events_published_total counter\n"));
  EXPECT_EQ(m["evsse_connections_active"], 1);
  EXPECT_EQ(m["evsse_connections_total"], 1);
  EXPECT_EQ(m["evsse_events_published_total"], 1);
  EXPECT_EQ(m["evsse_events_delivered_total"], 1);
  EXPECT_EQ(m["evsse_redis_up"], 0);
  EXPECT_EQ(m["evsse_alerts_published_total{severity=\"critical\"}"], 1);
  EXPECT_EQ(m["evsse_alerts_rejected_total{code=\"400\"}"], 1);
  EXPECT_EQ(m["evsse_draining"], 0);
}

// A subscriber that stays connected but stops reading (its receive window
// closes) is ended by write_stall_timeout, and operators see it on /metrics
// as evsse_stall_closes_total, not as a slow consumer (the history is large
// enough that it never falls out of it).
TEST_F(AlertsTest, AReaderThatStopsReadingIsAStallCloseOnMetrics) {
  Start(
      "server {\n"
      "  listen 127.0.0.1:0;\n"
      "  publish_token " +
      std::string(kToken) +
      ";\n"
      "  max_alert_bytes 16k;\n"
      "  max_title_length 4096;\n"
      "  history_max_events 100000;\n"
      "  endpoint subscribe /alerts/stream {\n"
      "    write_stall_timeout 1s;\n"
      "    max_queued_bytes 64k;\n"
      "  }\n"
      "  endpoint metrics /metrics { }\n"
      "}\n");
  auto mute = Stream("topic=ops");
  Streaming(*mute);
  mute->StopReading();  // 4 KiB receive buffer, never read again
  auto metrics = [&] { return ParseMetrics(Call("GET", "/metrics").body); };
  // Publish until the stream is gone: the kernel's buffers fill (on
  // loopback the send buffer may grow to several MiB), then the 64 KiB
  // queue, then the stall timer runs out.
  std::string title(4000, 't');
  int published = 0;
  while (metrics()["evsse_connections_active"] != 0) {
    ASSERT_LT(published, 20000) << "the mute reader was never closed";
    for (int i = 0; i < 50; ++i, ++published) {
      ASSERT_EQ(PostAlert(Alert("info", "ops", title)).status, 200);
    }
  }
  auto m = metrics();
  EXPECT_EQ(m["evsse_stall_closes_total"], 1);
  EXPECT_EQ(m["evsse_slow_consumer_closes_total"], 0);
  EXPECT_EQ(m["evsse_connections_total"], 1);
}

TEST_F(AlertsTest, StatusIsJsonWithStatsAndConfigButNoSecrets) {
  Start(
      Conf("  subscriber_auth on;\n"
           "  subscriber_token reader-ops-0123456789 ops;\n"));
  Publish("info", "ops");
  Response r = Call("GET", "/status");
  ASSERT_EQ(r.status, 200);
  Json j = r.json();
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["listen"], "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(j["stats"]["events_published"], 1);
  EXPECT_EQ(j["stats"]["connections_active"], 0);
  EXPECT_TRUE(j["redis"].is_null());
  EXPECT_EQ(j["config"]["alerts"]["subscriber_auth"], true);
  EXPECT_EQ(j["config"]["alerts"]["subscriber_tokens"], 1);
  EXPECT_EQ(j["config"]["alerts"]["publish_token_set"], true);
  EXPECT_EQ(j["config"]["endpoints"][0]["path"], "/alerts/stream");
  EXPECT_EQ(j["config"]["endpoints"][0]["heartbeat_ms"], 15000);
  EXPECT_THAT(r.body, Not(HasSubstr(kToken)));
  EXPECT_THAT(r.body, Not(HasSubstr("reader-ops")));
}

TEST_F(AlertsTest, ThePageUsesEventSourceOnTheStream) {
  Start(Conf());
  Response page = Call("GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.headers["Content-Type"], "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("data-stream=\"/alerts/stream\""));
  EXPECT_THAT(page.body, HasSubstr("<script src=\"/app.js\">"));
  EXPECT_THAT(page.headers["Content-Security-Policy"],
              HasSubstr("script-src 'self'"));
  Response js = Call("GET", "/app.js");
  ASSERT_EQ(js.status, 200);
  for (const char* s : {"new EventSource(", "'info', 'warning', 'critical'",
                        "lastEventId", "seen.has(id)", "loadRecent",
                        "'reconnecting'", "'connecting'", "'open'"})
    EXPECT_THAT(js.body, HasSubstr(s));
}

// --- Signals
// --------------------------------------------------------------------

TEST_F(AlertsTest, SighupReloadsTheTokenAndKeepsRunningOnABadFile) {
  Start(Conf());
  EXPECT_EQ(PostAlert(Alert("info", "ops")).status, 200);
  server_->Rewrite(Conf("", "", "second-token-0123456789"));
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitLog("msg=reloaded"));
  EXPECT_THAT(server_->Log(), HasSubstr("changed=publish_token"));
  EXPECT_EQ(PostAlert(Alert("info", "ops")).status, 401);
  EXPECT_EQ(PostAlert(Alert("info", "ops"), "second-token-0123456789").status,
            200);

  // A broken file is reported and changes nothing.
  server_->Rewrite(Conf("  dedup_window 5x;\n", "", "third-token-0123456789"));
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitLog("msg=\"reload failed"));
  EXPECT_THAT(server_->Log(), HasSubstr("alerts.conf:7: directive "
                                        "\\\"dedup_window\\\": invalid "
                                        "duration \\\"5x\\\""));
  EXPECT_EQ(PostAlert(Alert("info", "ops"), "second-token-0123456789").status,
            200);
  // Limits the Hub copied at start cannot change live: said so, kept.
  server_->Rewrite(Conf("", "    retry 5s;\n", "second-token-0123456789"));
  server_->Signal(SIGHUP);
  ASSERT_TRUE(server_->WaitLog("msg=reloaded", 2));
  EXPECT_THAT(server_->Log(), HasSubstr("need a restart"));
  EXPECT_THAT(server_->Log(), HasSubstr("changed=endpoints"));
  EXPECT_EQ(Call("GET", "/status").json()["config"]["endpoints"][0]["retry_ms"],
            2000);
  EXPECT_THAT(server_->Log(), Not(HasSubstr("second-token")));
}

TEST_F(AlertsTest, SigtermDrainsStreamsCleanlyAndExitsZero) {
  Start(Conf());
  auto a = Stream("topic=ops");
  auto b = Stream("topic=web");
  Streaming(*a);
  Streaming(*b);
  Publish("info", "ops");
  ASSERT_TRUE(Poll({a.get()}, [&] { return a->events.size() == 1; }));
  server_->Signal(SIGTERM);
  // Each stream gets a last retry hint and the chunked end: a clean end,
  // not a cut connection.
  ASSERT_TRUE(Poll({a.get(), b.get()},
                   [&] { return a->chunked_end() && b->chunked_end(); }));
  EXPECT_EQ(server_->ExitStatus(), 0) << server_->Log();
  EXPECT_THAT(server_->Log(), HasSubstr("msg=draining signal=TERM"));
  EXPECT_THAT(server_->Log(), HasSubstr("msg=drained"));
}

}  // namespace
}  // namespace evsse::testing
