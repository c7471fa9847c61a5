// evsse::Client against the in-process evhttp server: events, resume across
// reconnects, retry, backoff, 204, HTTP errors, timeouts, headers, and
// closing or destroying the client from inside its own callbacks.
#include "evsse/client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using State = Client::ReadyState;

// Record: everything a client reported, with times.
struct Record {
  int opens = 0;
  std::vector<Clock::time_point> open_at;
  std::vector<Client::Event> events;
  std::vector<Status> errors;
  std::vector<State> error_states;
  std::vector<Clock::time_point> error_at;
  std::vector<milliseconds> error_delays;  // next_delay() at each error
  int closes = 0;
  Status close_status;

  std::vector<std::string> datas() const {
    std::vector<std::string> out;
    for (auto& e : events) out.push_back(e.data);
    return out;
  }
};

class ClientTest : public HttpFixture {
 protected:
  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  std::string Id(uint64_t seq) const {
    std::string e;
    pubsub::AppendBase36(e, hub_->epoch());
    return e + "." + std::to_string(seq);
  }

  // Make creates a client whose callbacks fill `r`; not started.
  std::unique_ptr<Client> Make(ClientOptions o, Record* r) {
    auto c = Client::Create(base_, std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    std::unique_ptr<Client> client = std::move(c.value());
    Client* raw = client.get();
    client->OnOpen([r, raw] {
      EXPECT_EQ(raw->ready_state(), State::kOpen);
      ++r->opens;
      r->open_at.push_back(Clock::now());
    });
    client->OnEvent([r](const Client::Event& e) { r->events.push_back(e); });
    client->OnError([r, raw](const Status& s) {
      r->errors.push_back(s);
      r->error_states.push_back(raw->ready_state());
      r->error_at.push_back(Clock::now());
      r->error_delays.push_back(raw->next_delay());
    });
    client->OnClose([r](const Status& s) {
      ++r->closes;
      r->close_status = s;
    });
    return client;
  }

  std::unique_ptr<Client> Start(ClientOptions o, Record* r) {
    auto c = Make(std::move(o), r);
    if (c) {
      EXPECT_TRUE(c->Start().ok());
    }
    return c;
  }

  ClientOptions Opts(const std::string& target) const {
    ClientOptions o;
    o.url = Url(target);
    return o;
  }
};

TEST_F(ClientTest, ReceivesTypedAndMultiLineEvents) {
  StartServer();
  Record r;
  auto c = Start(Opts("/events?topic=a"), &r);
  ASSERT_TRUE(RunUntil([&] { return r.opens == 1; }));
  EXPECT_EQ(c->http_status(), 200);
  ASSERT_TRUE(RunUntil([&] { return c->retry().has_value(); }));
  std::vector<std::string> greets;
  c->On("greet", [&](const Client::Event& e) { greets.push_back(e.data); });
  std::string id1 = Publish("a", "line 1\r\nline 2\rline 3", "greet");
  std::string id2 = Publish("a", "plain");
  std::string id3 = Publish("a", "caf\xc3\xa9 \xe2\x82\xac", "greet");
  ASSERT_TRUE(RunUntil([&] { return r.events.size() == 3; }));
  EXPECT_EQ(r.events[0].type, "greet");
  EXPECT_EQ(r.events[0].data, "line 1\nline 2\nline 3");
  EXPECT_EQ(r.events[0].last_event_id, id1);
  EXPECT_EQ(r.events[1].type, "message");
  EXPECT_EQ(r.events[1].data, "plain");
  EXPECT_EQ(r.events[1].last_event_id, id2);
  EXPECT_EQ(r.events[2].data, "caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(greets, (std::vector<std::string>{"line 1\nline 2\nline 3",
                                              "caf\xc3\xa9 \xe2\x82\xac"}));
  EXPECT_EQ(c->last_event_id(), id3);
  EXPECT_EQ(c->ready_state(), State::kOpen);
  EXPECT_TRUE(r.errors.empty());
  c->Close();
  EXPECT_EQ(r.closes, 1);
  EXPECT_EQ(r.close_status.code(), StatusCode::kCancelled);
  c->Close();  // idempotent
  EXPECT_EQ(r.closes, 1);
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

// The server ends every stream after ~100 ms; the client resumes each time
// with Last-Event-ID. A numbered sequence published meanwhile must arrive
// exactly once each, in order.
TEST_F(ClientTest, ResumesAcrossServerClosesWithoutLossOrDuplication) {
  StreamOptions so;
  so.max_lifetime = milliseconds(100);
  so.retry = milliseconds(20);
  so.retry_jitter = milliseconds(0);
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=seq");
  o.max_backoff = milliseconds(100);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.opens == 1; }));
  const int kCount = 300;
  int next = 1;
  auto next_at = Clock::now();
  ASSERT_TRUE(RunUntil(
      [&] {
        if (next <= kCount && Clock::now() >= next_at) {
          EXPECT_TRUE(hub_->Publish("seq", {"", std::to_string(next++)}).ok());
          next_at += milliseconds(5);
        }
        return r.events.size() >= static_cast<size_t>(kCount);
      },
      std::chrono::seconds(30)));
  RunFor(milliseconds(150));  // anything duplicated would show up now
  ASSERT_EQ(r.events.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(r.events[i].data, std::to_string(i + 1)) << i;
    ASSERT_EQ(r.events[i].last_event_id, Id(i + 1)) << i;
  }
  EXPECT_GE(r.opens, 5);
  EXPECT_GE(hub_->stats().replays, 4u);
  EXPECT_EQ(hub_->stats().gaps, 0u);
  for (size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_EQ(r.errors[i].code(), StatusCode::kUnavailable);
    EXPECT_EQ(r.error_states[i], State::kConnecting);
  }
  EXPECT_EQ(r.closes, 0);
}

// The reconnect delay after a stream ends is the server's `retry:`, not
// initial_retry. Measured from the end of one stream to the next open.
TEST_F(ClientTest, HonoursServerRetry) {
  for (int retry_ms : {100, 1500}) {
    SCOPED_TRACE(retry_ms);
    StreamOptions so;
    so.max_lifetime = milliseconds(100);
    so.retry = milliseconds(retry_ms);
    so.retry_jitter = milliseconds(0);
    if (http_) evhttp_free(http_);
    hub_.reset();
    http_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
    ASSERT_NE(bound, nullptr);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    StartServer({}, so);

    Record r;
    ClientOptions o = Opts("/events?topic=a");
    o.initial_retry = milliseconds(5000);
    auto c = Start(o, &r);
    ASSERT_TRUE(
        RunUntil([&] { return r.opens == 2; }, std::chrono::seconds(10)));
    ASSERT_GE(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].message(), "stream ended by server");
    EXPECT_EQ(r.error_states[0], State::kConnecting);
    EXPECT_EQ(r.error_delays[0], milliseconds(retry_ms));
    EXPECT_EQ(c->retry(), static_cast<uint64_t>(retry_ms));
    auto gap =
        std::chrono::duration_cast<milliseconds>(r.open_at[1] - r.error_at[0]);
    // The server's retry was waited (the delay itself is checked above:
    // initial_retry, 5 s, would show there).
    EXPECT_GE(gap, milliseconds(retry_ms - 10));
  }
}

int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST_F(ClientTest, BackoffGrowsOnRepeatedConnectFailures) {
  Record r;
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/events";
  o.initial_retry = milliseconds(50);
  o.max_backoff = milliseconds(800);
  auto c = Start(o, &r);
  ASSERT_TRUE(
      RunUntil([&] { return r.errors.size() >= 8; }, std::chrono::seconds(20)));
  c->Close();
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < r.error_at.size(); ++i)
    gaps.push_back(std::chrono::duration_cast<milliseconds>(r.error_at[i] -
                                                            r.error_at[i - 1])
                       .count());
  // Delays drawn: 50, [50,100], [100,200], [200,400], [400,800], then
  // capped. They are the client's own choice (next_delay()), so they are
  // checked exactly; the wall clock only shows each one was waited (a
  // loaded machine makes a gap longer, never shorter).
  const int64_t lo[] = {50, 50, 100, 200, 400};
  const int64_t hi[] = {50, 100, 200, 400, 800};
  for (size_t i = 0; i < r.error_delays.size(); ++i) {
    size_t k = std::min<size_t>(i, 4);
    EXPECT_GE(r.error_delays[i].count(), lo[k]) << i;
    EXPECT_LE(r.error_delays[i].count(), hi[k]) << i;
  }
  for (size_t i = 0; i < gaps.size(); ++i)
    EXPECT_GE(gaps[i], r.error_delays[i].count() - 10) << i;
  EXPECT_GE(gaps[0], 45);
  EXPECT_GE(gaps[3], 190);
  EXPECT_GE(gaps[4], 390);
  for (size_t i = 0; i < r.errors.size(); ++i) {
    EXPECT_EQ(r.errors[i].code(), StatusCode::kUnavailable)
        << r.errors[i].ToString();
    EXPECT_EQ(r.error_states[i], State::kConnecting);
    EXPECT_LE(r.error_delays[i], milliseconds(800));
  }
  EXPECT_EQ(r.error_delays[0], milliseconds(50));
  EXPECT_EQ(r.opens, 0);
  EXPECT_EQ(c->attempts(), r.errors.size());
  EXPECT_EQ(r.closes, 1);
}

// Shedding (200 + retry + close, no event) counts as a failure: the client
// backs off instead of hammering a busy server at the bare retry.
TEST_F(ClientTest, ShedResponsesBackOff) {
  HubOptions ho;
  ho.max_connections = 1;
  StreamOptions so;
  so.retry = milliseconds(50);
  so.retry_jitter = milliseconds(0);
  StartServer(ho, so);
  auto hog = Get("/events?topic=a");  // takes the only slot
  ASSERT_TRUE(RunUntil([&] { return hog->retry.has_value(); }));
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.max_backoff = milliseconds(2000);
  auto c = Start(o, &r);
  ASSERT_TRUE(
      RunUntil([&] { return r.errors.size() >= 5; }, std::chrono::seconds(10)));
  EXPECT_GE(r.opens, 5);  // each shed answer is a 200 event stream
  // 50, then drawn from [g/2, g] with g = 100, 200, 400, 800.
  EXPECT_EQ(r.error_delays[0], milliseconds(50));
  EXPECT_GE(r.error_delays[4], milliseconds(400));
  EXPECT_GE(hub_->stats().connections_shed, 5u);
}

TEST_F(ClientTest, StopsOn204) {
  int auth_calls = 0;
  StreamOptions so;
  so.auth = [&](const Request&) {
    ++auth_calls;
    return AuthDecision::Deny(204, "");
  };
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.initial_retry = milliseconds(10);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  EXPECT_TRUE(r.close_status.ok());
  EXPECT_EQ(r.close_status.message(), "stopped by server");
  EXPECT_EQ(c->ready_state(), State::kClosed);
  EXPECT_EQ(c->http_status(), 204);
  RunFor(milliseconds(200));
  EXPECT_EQ(auth_calls, 1);
  EXPECT_EQ(c->attempts(), 1u);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.opens, 0);
  EXPECT_FALSE(c->Start().ok());
}

TEST_F(ClientTest, ReportsHttpErrorAndDoesNotReconnect) {
  int auth_calls = 0;
  StreamOptions so;
  so.auth = [&](const Request&) {
    ++auth_calls;
    return AuthDecision::Deny(403, "no entry for you");
  };
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.initial_retry = milliseconds(10);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.errors[0].message(), "HTTP 403 Forbidden: no entry for you");
  EXPECT_EQ(r.error_states[0], State::kClosed);
  EXPECT_EQ(r.close_status, r.errors[0]);
  EXPECT_EQ(c->http_status(), 403);
  RunFor(milliseconds(200));
  EXPECT_EQ(auth_calls, 1);
  EXPECT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.opens, 0);
}

TEST_F(ClientTest, ReconnectOnHttpErrorOptionRetries) {
  int auth_calls = 0;
  StreamOptions so;
  so.auth = [&](const Request&) {
    ++auth_calls;
    return AuthDecision::Deny(401, "");
  };
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.initial_retry = milliseconds(10);
  o.max_backoff = milliseconds(40);
  o.reconnect_on_http_error = true;
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.errors.size() >= 3; }));
  EXPECT_EQ(r.errors[0].code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r.errors[0].message(), "HTTP 401 Unauthorized: unauthorized");
  EXPECT_EQ(r.error_states[0], State::kConnecting);
  EXPECT_GE(auth_calls, 3);
  EXPECT_EQ(r.closes, 0);
}

// A route of our own on the same server for responses the endpoint never
// gives: wrong content type, long error bodies, a 503 with Retry-After.
void OnOddRoute(evhttp_request* req, void*) {
  std::string path = evhttp_request_get_uri(req);
  evbuffer* body = evbuffer_new();
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  if (path == "/html") {
    evhttp_add_header(out, "Content-Type", "text/html");
    evbuffer_add_printf(body, "<p>hi</p>");
    evhttp_send_reply(req, 200, "OK", body);
  } else if (path == "/long") {
    std::string big(10000, 'x');
    evbuffer_add(body, big.data(), big.size());
    evhttp_send_reply(req, 500, "Internal Server Error", body);
  } else {
    evhttp_add_header(out, "Content-Type", "Text/Event-Stream ; charset=utf-8");
    evbuffer_add_printf(body, "retry: 10\ndata: once\n\n");
    evhttp_send_reply(req, 200, "OK", body);
  }
  evbuffer_free(body);
}

TEST_F(ClientTest, WrongContentTypeFailsForGood) {
  StartServer();
  evhttp_set_cb(http_, "/html", &OnOddRoute, nullptr);
  Record r;
  auto c = Start(Opts("/html"), &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.errors[0].message().find("text/html"), std::string::npos);
  EXPECT_EQ(r.opens, 0);
  EXPECT_EQ(c->attempts(), 1u);
}

TEST_F(ClientTest, ErrorBodyIsCutToASnippet) {
  StartServer();
  evhttp_set_cb(http_, "/long", &OnOddRoute, nullptr);
  Record r;
  ClientOptions o = Opts("/long");
  o.max_error_body_bytes = 16;
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.errors[0].message(),
            "HTTP 500 Internal Server Error: " + std::string(16, 'x'));
}

// A Content-Length body (not chunked) with a media type in odd case: the
// events arrive, then the end of the body is a normal end of stream.
TEST_F(ClientTest, PlainBodyStreamAndMediaTypeCase) {
  StartServer();
  evhttp_set_cb(http_, "/once", &OnOddRoute, nullptr);
  Record r;
  auto c = Start(Opts("/once"), &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 2; }));
  EXPECT_EQ(r.events[0].data, "once");
  EXPECT_GE(r.opens, 2);
  EXPECT_EQ(r.errors[0].message(), "stream ended by server");
}

TEST_F(ClientTest, IdleTimeoutReconnects) {
  StreamOptions so;
  so.heartbeat = milliseconds(0);
  so.retry = milliseconds(20);
  so.retry_jitter = milliseconds(0);
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.idle_timeout = milliseconds(200);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.opens == 2; }));
  ASSERT_GE(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(r.errors[0].message().find("idle timeout"), std::string::npos)
      << r.errors[0].message();
  EXPECT_EQ(r.error_states[0], State::kConnecting);
  EXPECT_GE(r.error_at[0] - r.open_at[0], milliseconds(190));
  // The server sees the dropped connection go away.
  c->Close();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

TEST_F(ClientTest, HeartbeatsKeepAnIdleTimeoutAtBay) {
  StreamOptions so;
  so.heartbeat = milliseconds(50);
  StartServer({}, so);
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.idle_timeout = milliseconds(300);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.opens == 1; }));
  RunFor(milliseconds(800));
  EXPECT_EQ(r.opens, 1);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_GE(hub_->stats().heartbeats, 5u);
}

TEST_F(ClientTest, ConnectTimeoutWhenNobodyAnswers) {
  // A listening socket that never accepts, its queue filled by others: the
  // client's SYN goes unanswered (Linux drops it), so the attempt is
  // cancelled while still connecting. Should the kernel complete the
  // handshake anyway, no HTTP answer ever comes: the same timeout.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 0), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(f);
  }
  Record r;
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
  o.connect_timeout = milliseconds(150);
  o.initial_retry = milliseconds(20);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.errors.size() >= 2; }));
  EXPECT_NE(r.errors[0].message().find("within 150 ms"), std::string::npos)
      << r.errors[0].message();
  EXPECT_EQ(r.error_states[0], State::kConnecting);
  c.reset();
  for (int f : fillers) close(f);
  close(fd);
}

TEST_F(ClientTest, CustomHeadersAndInitialLastEventIdReachTheServer) {
  std::vector<std::string> seen;
  StreamOptions so;
  so.auth = [&](const Request& req) {
    for (const char* h :
         {"Authorization", "X-Trace", "Accept", "Last-Event-ID", "Host"}) {
      const char* v = req.header(h);
      seen.push_back(std::string(h) + "=" + (v ? v : "(none)"));
    }
    const char* auth = req.header("Authorization");
    if (!auth || std::string(auth) != "Bearer s3cret")
      return AuthDecision::Deny(401, "bad token");
    return AuthDecision::Allow();
  };
  StartServer({}, so);
  for (int i = 1; i <= 3; ++i) Publish("a", "e" + std::to_string(i));
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.headers = {{"Authorization", "Bearer s3cret"}, {"X-Trace", "abc 123"}};
  o.last_event_id = Id(2);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() == 1; }));
  EXPECT_EQ(r.datas(), (std::vector<std::string>{"e3"}));
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "Authorization=Bearer s3cret", "X-Trace=abc 123",
                      "Accept=text/event-stream", "Last-Event-ID=" + Id(2),
                      "Host=127.0.0.1:" + std::to_string(port_)}));
  EXPECT_TRUE(r.errors.empty());
}

TEST_F(ClientTest, CloseInsideOnEventDropsTheRestAndStops) {
  StartServer();
  Record r;
  ClientOptions o = Opts("/events?topic=a");
  o.initial_retry = milliseconds(10);
  auto c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.opens == 1; }));
  int typed = 0;
  c->OnEvent([&](const Client::Event& e) {
    r.events.push_back(e);
    c->Close();
    c->Close();
  });
  c->On("message", [&](const Client::Event&) { ++typed; });
  // Three events in one chunk at least some of the time.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(hub_->Publish("a", {"", std::to_string(i)}).ok());
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  RunFor(milliseconds(100));
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_EQ(typed, 0);
  EXPECT_EQ(r.closes, 1);
  EXPECT_EQ(r.close_status.message(), "closed by client");
  EXPECT_EQ(c->attempts(), 1u);
  EXPECT_TRUE(r.errors.empty());
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

TEST_F(ClientTest, CloseInsideOnOpenAndOnError) {
  StartServer();
  {
    Record r;
    auto c = Make(Opts("/events?topic=a"), &r);
    c->OnOpen([&] {
      ++r.opens;
      c->Close();
    });
    ASSERT_TRUE(c->Start().ok());
    ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
    RunFor(milliseconds(50));
    EXPECT_EQ(r.opens, 1);
    EXPECT_TRUE(r.errors.empty());  // the aborted request reports nothing
    EXPECT_EQ(c->ready_state(), State::kClosed);
  }
  {
    Record r;
    ClientOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/";
    o.initial_retry = milliseconds(10);
    auto c = Make(o, &r);
    c->OnError([&](const Status& s) {
      r.errors.push_back(s);
      c->Close();
    });
    ASSERT_TRUE(c->Start().ok());
    ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
    RunFor(milliseconds(100));
    EXPECT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(c->attempts(), 1u);
  }
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

// Destroying the client inside each of its callbacks: no use-after-free
// (ASan), on_close exactly once, nothing after it.
TEST_F(ClientTest, DestroyInsideCallbacks) {
  StreamOptions so;
  so.max_lifetime = milliseconds(50);
  so.retry = milliseconds(10);
  so.retry_jitter = milliseconds(0);
  StartServer({}, so);
  for (const char* where : {"open", "event", "error", "close"}) {
    SCOPED_TRACE(where);
    Record r;
    std::unique_ptr<Client> c = Make(Opts("/events?topic=d"), &r);
    std::string w = where;
    bool destroyed = false;
    auto destroy = [&] {
      if (!destroyed) c.reset();
      destroyed = true;
    };
    c->OnOpen([&] {
      ++r.opens;
      if (w == "open") destroy();
    });
    c->OnEvent([&](const Client::Event& e) {
      r.events.push_back(e);
      if (w == "event") destroy();
    });
    c->OnError([&](const Status& s) {
      r.errors.push_back(s);
      if (w == "error") destroy();
      if (w == "close" && !destroyed) c->Close();
    });
    c->OnClose([&](const Status& s) {
      ++r.closes;
      r.close_status = s;
      if (w == "close") destroy();
    });
    ASSERT_TRUE(c->Start().ok());
    ASSERT_TRUE(RunUntil([&] {
      if (r.opens > 0 && w == "event") {
        EXPECT_TRUE(hub_->Publish("d", {"", "x"}).ok());
      }
      return destroyed;
    }));
    RunFor(milliseconds(100));
    EXPECT_EQ(r.closes, 1);
    EXPECT_LE(r.events.size(), 1u);
    if (w != "close") {
      EXPECT_EQ(r.close_status.message(), "client destroyed");
    }
  }
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

TEST_F(ClientTest, CloseWhileConnectingAndBeforeStart) {
  StartServer();
  Record r1;
  auto c1 = Start(Opts("/events?topic=a"), &r1);
  c1->Close();  // the first attempt has not even begun
  RunFor(milliseconds(50));
  EXPECT_EQ(r1.closes, 1);
  EXPECT_EQ(c1->attempts(), 0u);

  // A listener that never answers: the client is waiting for headers.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Record r2;
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
  auto c2 = Start(o, &r2);
  ASSERT_TRUE(RunUntil([&] { return c2->attempts() == 1; }));
  RunFor(milliseconds(20));
  c2->Close();
  RunFor(milliseconds(50));
  EXPECT_EQ(r2.closes, 1);
  EXPECT_EQ(r2.opens, 0);
  EXPECT_TRUE(r2.errors.empty());
  close(fd);

  Record r3;
  auto c3 = Make(Opts("/events?topic=a"), &r3);
  c3->Close();
  EXPECT_EQ(r3.closes, 1);
  EXPECT_EQ(c3->Start().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

TEST_F(ClientTest, ManyClientsComeAndGo) {
  StreamOptions so;
  so.max_lifetime = milliseconds(30);
  so.retry = milliseconds(5);
  so.retry_jitter = milliseconds(0);
  StartServer({}, so);
  std::vector<std::unique_ptr<Client>> cs;
  std::vector<Record> rs(20);
  for (int i = 0; i < 20; ++i)
    cs.push_back(Start(Opts("/events?topic=m"), &rs[i]));
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(rs.begin(), rs.end(),
                       [](const Record& r) { return r.opens >= 3; });
  }));
  for (size_t i = 0; i < cs.size(); i += 2) cs[i].reset();
  RunFor(milliseconds(50));
  cs.clear();
  ASSERT_TRUE(RunUntil([&] { return hub_->stats().connections_active == 0; }));
}

// fallback_urls: the first URL refuses connections (a dead node), so every
// other attempt fails there and the next one goes to the live server with
// the same Last-Event-ID. Streams end every ~150 ms, so the client cycles
// over both URLs many times; the numbered sequence still arrives exactly
// once each, in order.
TEST_F(ClientTest, FailsOverAcrossUrlsWithLastEventId) {
  StreamOptions so;
  so.max_lifetime = milliseconds(150);
  so.retry = milliseconds(20);
  so.retry_jitter = milliseconds(0);
  StartServer({}, so);
  std::string first = Publish("f", "0");
  Record r;
  ClientOptions o;
  o.url =
      "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/events?topic=f";
  o.fallback_urls = {Url("/events?topic=f")};
  o.last_event_id = first;
  o.initial_retry = milliseconds(20);
  o.max_backoff = milliseconds(100);
  auto c = Start(o, &r);
  EXPECT_EQ(c->url(), o.url);
  const int kCount = 100;
  int next = 1;
  auto next_at = Clock::now();
  ASSERT_TRUE(RunUntil(
      [&] {
        if (next <= kCount && Clock::now() >= next_at) {
          EXPECT_TRUE(hub_->Publish("f", {"", std::to_string(next++)}).ok());
          next_at += milliseconds(10);
        }
        return r.events.size() >= static_cast<size_t>(kCount);
      },
      std::chrono::seconds(30)));
  RunFor(milliseconds(200));
  ASSERT_EQ(r.events.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i)
    ASSERT_EQ(r.events[i].data, std::to_string(i + 1)) << i;
  EXPECT_GE(r.opens, 3);
  // Attempts alternate: odd ones to the dead URL, even ones to the server.
  EXPECT_GE(c->attempts(), 2u * r.opens - 1);
  EXPECT_GE(hub_->stats().replays, 3u);
  EXPECT_EQ(hub_->stats().gaps, 0u);
  c->Close();
  EXPECT_EQ(r.closes, 1);

  // Every fallback URL is checked like `url`.
  ClientOptions bad;
  bad.url = Url("/events?topic=f");
  bad.fallback_urls = {"https://127.0.0.1/"};
  EXPECT_EQ(Client::Create(base_, bad).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, CreateRejectsBadOptions) {
  auto bad = [&](ClientOptions o) {
    auto c = Client::Create(base_, o);
    EXPECT_FALSE(c.ok()) << o.url;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    }
  };
  for (const char* url :
       {"", "ftp://example.com/", "http://", "http://u:p@host/",
        "http://host:0/", "http://host:99999/", "/relative", "http://h/a b"}) {
    ClientOptions o;
    o.url = url;
    bad(o);
  }
  ClientOptions o;
  o.url = "http://127.0.0.1:1/";
  o.headers = {{"Bad Name", "x"}};
  bad(o);
  o.headers = {{"X", "a\r\nInjected: 1"}};
  bad(o);
  o.headers = {{"last-event-id", "1"}};
  bad(o);
  o.headers.clear();
  o.last_event_id = "a\nb";
  bad(o);
  o.last_event_id.clear();
  o.idle_timeout = milliseconds(-1);
  bad(o);
  o = ClientOptions();
  o.url = "http://h/";
  EXPECT_FALSE(Client::Create(nullptr, o).ok());
  o.url = "http://[::1]:8080/x?y=1#f";
  auto ok = Client::Create(base_, o);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

}  // namespace
}  // namespace evsse::testing
