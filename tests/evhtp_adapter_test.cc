// What only the libevhtp adapter has, on a real libevhtp 1.2.18 server over
// loopback: routing, teardown order, worker threads, its timeouts, and one
// test per libevhtp bug the adapter works around (see the list at the top
// of module/evhtp/evhtp_adapter.cc). Streaming, resume, backpressure and
// publishing run on both adapters in the shared suites (evhttp_stream_test,
// hostile_test, poll_test, publish_endpoint_test, ...).
#include <arpa/inet.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <map>
#include <mutex>
#include <thread>

#include "evsse/evhtp.h"
#include "evsse/pubsub/bus.h"
#include "evsse/pubsub/cursor.h"
#include "http_fixture.h"
#include "run_loop.h"

// Last: onigposix.h (pulled in by evhtp.h) renames the POSIX regex names,
// which breaks gtest's <regex.h> if it comes first.
#include <evhtp/evhtp.h>
#include <evhtp/thread.h>

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

// EvhtpTest: base + evhtp_t on 127.0.0.1 port 0 + Hub, one loop on the
// test thread. It counts the connections evhtp holds, so that tests can
// check cleanup and teardown can wait for it.
class EvhtpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    base_ = event_base_new();
    htp_ = evhtp_new(base_, nullptr);
    evhtp_set_post_accept_cb(htp_, &EvhtpTest::OnAccept, this);
    ASSERT_EQ(evhtp_bind_socket(htp_, "ipv4:127.0.0.1", 0, 128), 0);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(evconnlistener_get_fd(htp_->server),
                reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }

  void TearDown() override {
    // libevhtp 1.2.18's evhtp_free leaves connections open: end them first.
    hub_.reset();
    EXPECT_TRUE(RunUntil([&] { return connections_ == 0; }));
    if (htp_) {
      evhtp_unbind_socket(htp_);
      evhtp_free(htp_);
    }
    event_base_loop(base_, EVLOOP_NONBLOCK);
    event_base_free(base_);
  }

  void StartServer(HubOptions hub_options = {}, StreamOptions stream = {},
                   PublishOptions publish = {}) {
    auto hub = Hub::Create(base_, std::move(hub_options));
    ASSERT_TRUE(hub.ok()) << hub.status().ToString();
    hub_ = std::move(hub.value());
    ASSERT_TRUE(
        evhtp::Mount(htp_, "/events", hub_.get(), stream).Release().ok());
    if (publish.bearer_token.empty() && !publish.auth)
      publish.allow_unauthenticated = true;
    ASSERT_TRUE(evhtp::MountPublish(htp_, "/publish", hub_.get(), publish)
                    .Release()
                    .ok());
  }

  std::shared_ptr<TestClient> Get(const std::string& target,
                                  const std::string& extra_headers = "",
                                  const std::string& version = "HTTP/1.1") {
    return Raw("GET " + target + " " + version +
               "\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" +
               extra_headers + "\r\n");
  }
  std::shared_ptr<TestClient> Raw(const std::string& request) {
    auto c = std::make_shared<TestClient>(port_, request);
    clients_.push_back(c);
    return c;
  }

  bool RunUntil(const std::function<bool()>& pred,
                milliseconds timeout = std::chrono::seconds(5),
                RawConn* raw = nullptr) {
    return RunLoopUntil(base_, pred, timeout, [&] {
      for (auto& w : clients_)
        if (auto c = w.lock()) c->Poll();
      if (raw) raw->Poll();
    });
  }
  void RunFor(milliseconds d) {
    RunUntil([] { return false; }, d);
  }

  std::string Publish(const std::string& topic, const std::string& data) {
    std::optional<Result<std::string>> got;
    EXPECT_TRUE(hub_->Publish(topic, {"", data},
                              [&](Result<std::string> id) { got = id; })
                    .ok());
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    return got && got->ok() ? got->value() : "";
  }

  std::string Id(uint64_t seq) const {
    std::string e;
    pubsub::AppendBase36(e, hub_->epoch());
    return e + "." + std::to_string(seq);
  }

  static evhtp_res OnAccept(evhtp_connection_t* conn, void* arg) {
    auto* self = static_cast<EvhtpTest*>(arg);
    ++self->connections_;
    ++self->accepted_;
    evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini,
                              reinterpret_cast<evhtp_hook>(&OnConnFini), arg);
    return EVHTP_RES_OK;
  }
  static evhtp_res OnConnFini(evhtp_connection_t*, void* arg) {
    --static_cast<EvhtpTest*>(arg)->connections_;
    return EVHTP_RES_OK;
  }

  event_base* base_ = nullptr;
  evhtp_t* htp_ = nullptr;
  std::unique_ptr<Hub> hub_;
  int port_ = 0;
  std::atomic<int> connections_{0};  // worker threads accept too
  std::atomic<int> accepted_{0};
  std::vector<std::weak_ptr<TestClient>> clients_;
};

// Bug 6: on_conn_error never fires; FIN and RST are seen through
// on_request_fini, and nothing is left behind.
TEST_F(EvhtpTest, DisconnectCyclesLeaveNothingBehind) {
  StartServer();
  for (int i = 0; i < 200; ++i) {
    auto c = Get("/events?topic=t" + std::to_string(i % 5));
    ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
    if (i % 4 == 0) {
      Publish("t" + std::to_string(i % 5), "x");
      ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
    }
    if (i % 2)
      c->Reset();
    else
      c->Close();
  }
  ASSERT_TRUE(RunUntil([&] {
    return hub_->stats().connections_active == 0 && connections_ == 0;
  }));
  EXPECT_EQ(hub_->stats().connections_total, 200u);
}

// Bugs 1 and 2: a 1.0 client gets a raw body (not chunked), and the end of
// the stream closes the connection, even when the output had already drained
// and the client asked for keep-alive.
TEST_F(EvhtpTest, Http10StreamIsRawAndEndsWithCloseOnLifetime) {
  StreamOptions so;
  so.max_lifetime = milliseconds(300);
  StartServer({}, so);
  auto c = Get("/events?topic=a", "", "HTTP/1.0");
  auto ka = Get("/events?topic=a", "Connection: keep-alive\r\n", "HTTP/1.0");
  ASSERT_TRUE(
      RunUntil([&] { return c->retry.has_value() && ka->retry.has_value(); }));
  Publish("a", "one");
  ASSERT_TRUE(RunUntil([&] { return c->closed() && ka->closed(); }));
  for (auto* x : {c.get(), ka.get()}) {
    EXPECT_EQ(x->status(), 200);
    EXPECT_FALSE(x->has_header("Transfer-Encoding"));
    EXPECT_FALSE(x->has_header("Content-Length"));
    EXPECT_EQ(x->header("Connection"), "close");
    EXPECT_EQ(x->body().find("\r\n"), std::string::npos);  // no chunk framing
    EXPECT_EQ(x->datas(), std::vector<std::string>{"one"});
  }
  EXPECT_EQ(hub_->stats().lifetime_closes, 2u);
  EXPECT_TRUE(RunUntil([&] { return connections_ == 0; }));
}

// Bug 2, the other path: the final retry hint is still queued when the
// stream ends, so evhtp's own write callback must close the connection,
// although the 1.0 client asked for keep-alive.
TEST_F(EvhtpTest, Http10KeepAliveStreamEndsCleanlyOnShutdown) {
  StartServer();
  RawConn c(port_);
  c.Send("GET /events?topic=a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(
      RunUntil([&] { return c.Has("retry: "); }, std::chrono::seconds(3), &c));
  int done = 0;
  hub_->Shutdown(milliseconds(50), [&] { ++done; });
  ASSERT_TRUE(RunUntil([&] { return c.eof && done == 1; },
                       std::chrono::seconds(3), &c));
  EXPECT_EQ(c.Count("retry: "), 2u) << c.in;  // the final hint, then EOF
  EXPECT_FALSE(c.Has("chunked")) << c.in;
  EXPECT_FALSE(c.Has("keep-alive")) << c.in;
  EXPECT_EQ(c.Count("Connection: close\r\n"), 1u) << c.in;
}

// Bug 3: evhtp_set_cb matches prefixes; only the exact path is served.
TEST_F(EvhtpTest, PathsThatOnlyShareThePrefixGet404) {
  StartServer();
  auto x = Get("/eventsXYZ?topic=a");
  auto sub = Get("/events/sub?topic=a");
  auto pub =
      Raw("POST /publishing?topic=a HTTP/1.1\r\nHost: x\r\n"
          "Content-Length: 1\r\n\r\nz");
  auto ok = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] {
    return x->has_head() && sub->has_head() && pub->has_head() &&
           ok->retry.has_value();
  }));
  EXPECT_EQ(x->status(), 404);
  EXPECT_EQ(sub->status(), 404);
  EXPECT_EQ(pub->status(), 404);
  EXPECT_EQ(ok->status(), 200);
  EXPECT_EQ(hub_->stats().connections_total, 1u);
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

// Bug 5: libevhtp reads a form-encoded body as the query when the URL has
// none; the topic must come from the URL.
TEST_F(EvhtpTest, FormBodyIsNotReadAsTheQuery) {
  StartServer();
  auto p =
      Raw("POST /publish HTTP/1.1\r\nHost: x\r\n"
          "Content-Type: application/x-www-form-urlencoded\r\n"
          "Content-Length: 7\r\n\r\ntopic=a");
  ASSERT_TRUE(RunUntil([&] { return !p->body().empty(); }));
  EXPECT_EQ(p->status(), 400);
  EXPECT_NE(p->body().find("topic"), std::string::npos) << p->body();
  RunFor(milliseconds(20));
  EXPECT_EQ(hub_->stats().events_published, 0u);
}

// Bug 4: a "Connection: close" answer (load shedding) really closes, and the
// header is sent once.
TEST_F(EvhtpTest, ConnectionCloseAnswersClose) {
  HubOptions ho;
  ho.max_connections = 1;
  StartServer(ho);
  auto a = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return a->retry.has_value(); }));
  RawConn plain(port_);
  plain.Send("GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto es = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return plain.eof && es->closed(); },
                       std::chrono::seconds(3), &plain));
  EXPECT_EQ(plain.in.rfind("HTTP/1.1 503", 0), 0u) << plain.in;
  EXPECT_EQ(plain.Count("Connection: close\r\n"), 1u) << plain.in;
  EXPECT_TRUE(plain.Has("Retry-After: "));
  EXPECT_EQ(es->status(), 200);  // EventSource: 200 + retry, then close
  EXPECT_TRUE(es->retry.has_value());
  EXPECT_EQ(hub_->stats().connections_shed, 2u);
}

// Bug 6: the connection's on_write hook borrowed by a stream is given back
// when the stream ends, so a kept-alive connection serves more requests
// (ASan would catch a hook still pointing at the freed stream).
TEST_F(EvhtpTest, KeepAliveConnectionIsReusedAfterAStream) {
  StreamOptions so;
  so.max_lifetime = milliseconds(100);
  StartServer({}, so);
  RawConn k(port_);
  k.Send("GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return k.Has("\r\n0\r\n\r\n"); },
                       std::chrono::seconds(3), &k));
  k.in.clear();
  k.Send(
      "POST /publish?topic=b HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(
      RunUntil([&] { return k.Has("{\"id\":"); }, std::chrono::seconds(3), &k));
  EXPECT_EQ(k.in.rfind("HTTP/1.1 200", 0), 0u) << k.in;
  k.in.clear();
  k.Send("GET /events?topic=b&lastEventId=" + Id(0) +
         " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return k.Has("data: hi\n"); },
                       std::chrono::seconds(3), &k));
  ASSERT_TRUE(RunUntil([&] { return k.Has("\r\n0\r\n\r\n"); },
                       std::chrono::seconds(3), &k));
  EXPECT_FALSE(k.eof);
  EXPECT_EQ(accepted_.load(), 1);
  EXPECT_EQ(hub_->stats().lifetime_closes, 2u);
}

// Server timeouts do not cut streams, and come back once a stream ended on
// a kept-alive connection.
TEST_F(EvhtpTest, ServerReadTimeoutSparesStreamsOnly) {
  timeval read_timeout{0, 300000};
  evhtp_set_timeouts(htp_, &read_timeout, nullptr);
  StreamOptions so;
  so.heartbeat = milliseconds(0);
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  RawConn idle(port_);
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  ASSERT_TRUE(RunUntil([&] { return idle.eof; }, std::chrono::seconds(3),
                       &idle));  // an idle connection is cut
  RunFor(milliseconds(700));
  EXPECT_FALSE(c->closed());
  Publish("a", "still here");
  ASSERT_TRUE(RunUntil([&] { return c->events.size() == 1; }));
  hub_->Shutdown(milliseconds(0), nullptr);
  ASSERT_TRUE(RunUntil([&] { return c->chunked_end(); }));
  // Kept alive, idle again: the read timeout applies once more.
  ASSERT_TRUE(RunUntil([&] { return c->closed(); }, std::chrono::seconds(3)));
}

TEST_F(EvhtpTest, HubDestroyedWithOpenStreamsThenEvhtpFreed) {
  StartServer();
  auto a = Get("/events?topic=a");
  auto b = Get("/events?topic=a&topic=b");
  ASSERT_TRUE(
      RunUntil([&] { return a->retry.has_value() && b->retry.has_value(); }));
  std::optional<Result<std::string>> r;
  auto done = [&](Result<std::string> id) { r = id; };
  ASSERT_TRUE(hub_->Publish("a", {"", "never"}, done).ok());
  hub_.reset();  // aborts both streams (deferred), cancels the publish
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), StatusCode::kCancelled);
  ASSERT_TRUE(RunUntil([&] { return a->closed() && b->closed(); }));
  EXPECT_EQ(connections_.load(), 0);
  evhtp_unbind_socket(htp_);
  evhtp_free(htp_);  // nothing left that could reach the dead Hub
  htp_ = nullptr;
}

TEST_F(EvhtpTest, MountRejectsBadArguments) {
  auto hub = Hub::Create(base_, {});
  ASSERT_TRUE(hub.ok());
  Hub* h = hub->get();
  EXPECT_EQ(evhtp::Mount(nullptr, "/e", h).Release().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(evhtp::Mount(htp_, "e", h).Release().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(evhtp::Mount(htp_, "/e", h).Release().ok());
  EXPECT_EQ(evhtp::Mount(htp_, "/e", h).Release().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(evhtp::MountWorkers(htp_, "/w", nullptr).Release().code(),
            StatusCode::kInvalidArgument);
  StreamOptions bad;
  bad.max_queued_bytes = 10;  // checked at once, not on a worker
  EXPECT_EQ(evhtp::MountWorkers(
                htp_, "/w", [](event_base*) { return nullptr; }, bad)
                .Release()
                .code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(evhtp::MountPublishWorkers(htp_, "/p",
                                       [](event_base*) { return nullptr; }, {})
                .Release()
                .code(),
            StatusCode::kFailedPrecondition);  // no token, hook or opt-in
}

// Worker threads (evhtp_use_threads_wexit): one Hub per worker loop, on a
// shared bus; each request is served by the Hub of its connection's loop.
struct Workers {
  std::shared_ptr<pubsub::Bus> bus = std::make_shared<pubsub::Bus>();
  std::mutex mu;
  std::map<event_base*, std::unique_ptr<Hub>> hubs;
  std::atomic<int> lookups{0};
  std::atomic<bool> wrong_thread{false};
  std::map<event_base*, std::thread::id> threads;

  Hub* For(event_base* base) {
    ++lookups;
    std::lock_guard<std::mutex> lock(mu);
    if (threads[base] != std::this_thread::get_id()) wrong_thread = true;
    auto it = hubs.find(base);
    return it == hubs.end() ? nullptr : it->second.get();
  }
  static void Init(evhtp_t*, evthr_t* thr, void* arg) {
    auto* w = static_cast<Workers*>(arg);
    HubOptions o;
    o.bus = w->bus;
    event_base* base = evthr_get_base(thr);
    auto hub = Hub::Create(base, o);
    std::lock_guard<std::mutex> lock(w->mu);
    w->threads[base] = std::this_thread::get_id();
    w->hubs[base] = std::move(hub.value());
  }
  static void Exit(evhtp_t*, evthr_t* thr, void* arg) {
    auto* w = static_cast<Workers*>(arg);
    std::unique_lock<std::mutex> lock(w->mu);
    auto hub = std::move(w->hubs[evthr_get_base(thr)]);
    lock.unlock();  // the Hub goes on its own loop's thread
  }
};

TEST_F(EvhtpTest, WorkerThreadsServeWithTheHubOfTheirLoop) {
  Workers w;
  auto lookup = [&w](event_base* b) { return w.For(b); };
  ASSERT_TRUE(evhtp::MountWorkers(htp_, "/events", lookup).Release().ok());
  PublishOptions po;
  po.allow_unauthenticated = true;
  ASSERT_TRUE(
      evhtp::MountPublishWorkers(htp_, "/publish", lookup, po).Release().ok());
  ASSERT_EQ(
      evhtp_use_threads_wexit(htp_, &Workers::Init, &Workers::Exit, 2, &w), 0);
  std::vector<std::shared_ptr<TestClient>> cs;
  for (int i = 0; i < 6; ++i) cs.push_back(Get("/events?topic=a"));
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(cs.begin(), cs.end(),
                       [](auto& c) { return c->retry.has_value(); });
  }));
  auto x = Get("/eventsX?topic=a");
  auto p =
      Raw("POST /publish?topic=a HTTP/1.1\r\nHost: x\r\n"
          "Content-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(RunUntil([&] {
    return x->has_head() && !p->body().empty() &&
           std::all_of(cs.begin(), cs.end(),
                       [](auto& c) { return c->events.size() == 1; });
  }));
  EXPECT_EQ(x->status(), 404);
  EXPECT_EQ(p->status(), 200);
  for (auto& c : cs) EXPECT_EQ(c->events[0].data, "hi");
  // At most once per loop and endpoint (evthr picks the loops).
  EXPECT_GE(w.lookups.load(), 2);
  EXPECT_LE(w.lookups.load(), 4);
  EXPECT_FALSE(w.wrong_thread);
  {
    std::lock_guard<std::mutex> lock(w.mu);
    EXPECT_EQ(w.hubs.size(), 2u);
  }
  cs.clear();
  x.reset();
  p.reset();
  ASSERT_TRUE(RunUntil([&] { return connections_ == 0; }));
  evhtp_unbind_socket(htp_);
  evhtp_free(htp_);  // stops the workers: Exit destroys their Hubs
  htp_ = nullptr;
}

}  // namespace
}  // namespace evsse::testing
