// Dead peers on loopback: the TCP options evsse sets on stream sockets
// (dead_peer_timeout, TCP_NODELAY) on both adapters and on the client's
// socket, a zero-window reader still closed by the write-stall timeout, and
// what StreamOptions accepts as a CORS origin. The black-holed peer itself
// needs a network: tests/netns/dead_peer_test.sh.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "evsse/client.h"
#include "http_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

struct TcpState {
  int nodelay = -1, user_timeout = -1, keepalive = -1;
  int idle = -1, interval = -1, count = -1;
};

int Get(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0) return -2;
  return v;
}

TcpState Read(int fd) {
  return {Get(fd, IPPROTO_TCP, TCP_NODELAY),
          Get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT),
          Get(fd, SOL_SOCKET, SO_KEEPALIVE),
          Get(fd, IPPROTO_TCP, TCP_KEEPIDLE),
          Get(fd, IPPROTO_TCP, TCP_KEEPINTVL),
          Get(fd, IPPROTO_TCP, TCP_KEEPCNT)};
}

int Port(const sockaddr_in& a) { return ntohs(a.sin_port); }

// FindSocket returns this process's TCP socket whose local port (local =
// true) or peer port is `port` and whose other end is on `other_port`
// (any when 0), or -1. Server and clients share the process, so both ends
// of a loopback connection are here.
int FindSocket(bool local, int port, int other_port = 0) {
  for (int fd = 3; fd < 1024; ++fd) {
    sockaddr_in me{}, peer{};
    socklen_t a = sizeof me, b = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&me), &a) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &b) != 0 ||
        me.sin_family != AF_INET)
      continue;
    const sockaddr_in& mine = local ? me : peer;
    const sockaddr_in& theirs = local ? peer : me;
    if (Port(mine) == port && (other_port == 0 || Port(theirs) == other_port))
      return fd;
  }
  return -1;
}

class TcpOptionsTest : public OnEveryAdapter<HttpFixture> {
 protected:
  // ServerSocket is the accepted socket of the only stream.
  int ServerSocket() { return FindSocket(true, port_); }
};
INSTANTIATE_TEST_SUITE_P(Adapters, TcpOptionsTest, EveryAdapter(), AdapterName);

TEST_P(TcpOptionsTest, StreamSocketsGetTheDeadPeerOptionsByDefault) {
  StartServer();
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  int fd = ServerSocket();
  ASSERT_GE(fd, 0);
  TcpState s = Read(fd);
  EXPECT_EQ(s.nodelay, 1);
  EXPECT_EQ(s.user_timeout, 45000);  // dead_peer_timeout's default
  EXPECT_EQ(s.keepalive, 1);
  EXPECT_EQ(s.idle, 22);  // half of it, then 3 probes a sixth of it apart
  EXPECT_EQ(s.interval, 7);
  EXPECT_EQ(s.count, 3);
}

TEST_P(TcpOptionsTest,
       ShortTimeoutIsInMillisecondsAndKeepaliveAtLeastOneSecond) {
  StreamOptions so;
  so.dead_peer_timeout = milliseconds(1500);
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  TcpState s = Read(ServerSocket());
  EXPECT_EQ(s.user_timeout, 1500);
  EXPECT_EQ(s.idle, 1);
  EXPECT_EQ(s.interval, 1);
}

TEST_P(TcpOptionsTest, ZeroLeavesTheKernelDefaultsButStillSetsNodelay) {
  StreamOptions so;
  so.dead_peer_timeout = milliseconds(0);
  StartServer({}, so);
  auto c = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return c->retry.has_value(); }));
  TcpState s = Read(ServerSocket());
  EXPECT_EQ(s.nodelay, 1);
  EXPECT_EQ(s.user_timeout, 0);
}

TEST_P(TcpOptionsTest, OutOfRangeTimeoutIsRefused) {
  StartServer();
  StreamOptions so;
  so.dead_peer_timeout = milliseconds(-1);
  EXPECT_EQ(hub_->AddStreamEndpoint(so).status().code(),
            StatusCode::kOutOfRange);
  so.dead_peer_timeout = milliseconds(3600001);
  EXPECT_EQ(hub_->AddStreamEndpoint(so).status().code(),
            StatusCode::kOutOfRange);
}

// A reader that stays connected but stops reading (a zero receive window)
// is closed by the write-stall timeout and counted as a stall, as long as
// dead_peer_timeout is the longer one (as at the defaults, 45 s vs 30 s).
TEST_P(TcpOptionsTest, ZeroWindowReaderIsClosedByTheStallTimeout) {
  StreamOptions so;
  so.dead_peer_timeout = milliseconds(8000);
  so.write_stall_timeout = milliseconds(1500);
  so.max_queued_bytes = 64 << 10;
  HubOptions ho;
  ho.history_max_events = 1000000;  // never a slow-consumer close
  StartServer(ho, so);
  auto mute = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return mute->retry.has_value(); }));
  mute->StopReading();
  std::string payload(4000, 'p');
  int published = 0;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunUntil(
      [&] {
        if (published < 2000) {
          for (int i = 0; i < 20; ++i, ++published) {
            EXPECT_TRUE(hub_->Publish("a", {"", payload}).ok());
          }
        }
        return hub_->stats().connections_active == 0;
      },
      std::chrono::seconds(20)));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(hub_->stats().stall_closes, 1u);
  EXPECT_EQ(hub_->stats().slow_consumer_closes, 0u);
  EXPECT_GE(took, milliseconds(1500));
}

// Since Linux 5.11, TCP_USER_TIMEOUT also bounds zero-window probing, even
// though the reader acknowledges the probes: with dead_peer_timeout below
// write_stall_timeout the kernel ends the stream first, which the server
// sees as a peer close (not counted as a stall). This is why the default
// dead_peer_timeout is the longer one.
TEST_P(TcpOptionsTest, ShorterDeadPeerTimeoutEndsAZeroWindowReaderFirst) {
  StreamOptions so;
  so.dead_peer_timeout = milliseconds(1000);
  so.write_stall_timeout = milliseconds(30000);
  so.max_queued_bytes = 64 << 10;
  HubOptions ho;
  ho.history_max_events = 1000000;
  StartServer(ho, so);
  auto mute = Get("/events?topic=a");
  ASSERT_TRUE(RunUntil([&] { return mute->retry.has_value(); }));
  mute->StopReading();
  std::string payload(4000, 'p');
  int published = 0;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (published < 2000) {
          for (int i = 0; i < 20; ++i, ++published) {
            EXPECT_TRUE(hub_->Publish("a", {"", payload}).ok());
          }
        }
        return hub_->stats().connections_active == 0;
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(hub_->stats().stall_closes, 0u);
  EXPECT_EQ(hub_->stats().slow_consumer_closes, 0u);
}

TEST_P(TcpOptionsTest, CorsOriginsMustBeSchemeHostPort) {
  StartServer();
  for (const char* good :
       {"*", "https://app.example.com", "http://localhost:8080",
        "http://127.0.0.1:1", "https://[::1]:443", "app+x.y-z://h"}) {
    StreamOptions so;
    so.cors_origins = {good};
    EXPECT_TRUE(hub_->AddStreamEndpoint(so).ok()) << good;
  }
  for (const char* bad :
       {"", "app.example.com", "https://app.example.com/",
        "https://app.example.com/x", "https://App.example.com",
        "HTTPS://a.example", "https://a.example:", "https://a.example:0",
        "https://a.example:65536", "https://a.example:080",
        "https://u@a.example", "https://a.example?x", "null", "https://",
        "https://a b", "https://[::1"}) {
    StreamOptions so;
    so.cors_origins = {bad};
    Result<Handler*> h = hub_->AddStreamEndpoint(so);
    ASSERT_FALSE(h.ok()) << bad;
    EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(h.status().message().find("expected scheme://host[:port]"),
              std::string::npos)
        << h.status().message();
  }
  EXPECT_EQ(CheckCorsOrigin("https://a.example/"),
            "invalid origin: trailing slash (expected scheme://host[:port] in "
            "lower case, no path and no trailing slash, or \"*\")");
}

class ClientTcpOptionsTest : public HttpFixture {};

TEST_F(ClientTcpOptionsTest, ClientSocketGetsTheDeadPeerOptions) {
  StartServer();
  for (int ms : {45000, 0}) {
    ClientOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port_) + "/events?topic=a";
    o.dead_peer_timeout = milliseconds(ms);
    auto c = Client::Create(base_, o);
    ASSERT_TRUE(c.ok());
    int opens = 0;
    (*c)->OnOpen([&] { ++opens; });
    ASSERT_TRUE((*c)->Start().ok());
    ASSERT_TRUE(RunUntil([&] { return opens == 1; }));
    int fd = FindSocket(false, port_);
    ASSERT_GE(fd, 0);
    TcpState s = Read(fd);
    EXPECT_EQ(s.nodelay, 1);
    EXPECT_EQ(s.user_timeout, ms);
    if (ms) {
      EXPECT_EQ(s.keepalive, 1);
      EXPECT_EQ(s.idle, 22);
    }
    (*c)->Close();
    c->reset();
    ASSERT_TRUE(
        RunUntil([&] { return hub_->stats().connections_active == 0; }));
    RunFor(milliseconds(50));  // the client frees its connection from the loop
  }
}

// Events of several MiB pass the client's default limits; one past a limit
// is an error naming the option.
TEST_F(ClientTcpOptionsTest, ClientTakesMultiMegabyteEventsByDefault) {
  HubOptions ho;
  ho.max_event_bytes = 8 << 20;
  StartServer(ho);
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port_) + "/events?topic=a";
  auto c = Client::Create(base_, o);
  ASSERT_TRUE(c.ok());
  std::vector<size_t> sizes;
  std::vector<Status> errors;
  int opens = 0;
  (*c)->OnOpen([&] { ++opens; });
  (*c)->OnEvent(
      [&](const Client::Event& e) { sizes.push_back(e.data.size()); });
  (*c)->OnError([&](const Status& s) { errors.push_back(s); });
  ASSERT_TRUE((*c)->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return opens == 1; }));
  Publish("a", std::string(3 << 20, 'x'));  // one 3 MiB data line
  ASSERT_TRUE(RunUntil([&] { return sizes.size() == 1; }));
  EXPECT_EQ(sizes[0], 3u << 20);
  EXPECT_TRUE(errors.empty());
  (*c)->Close();

  o.max_line_bytes = 1 << 20;
  auto small = Client::Create(base_, o);
  ASSERT_TRUE(small.ok());
  (*small)->OnError([&](const Status& s) { errors.push_back(s); });
  opens = 0;
  (*small)->OnOpen([&] { ++opens; });
  ASSERT_TRUE((*small)->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return opens == 1; }));
  Publish("a", std::string(2 << 20, 'y'));
  ASSERT_TRUE(RunUntil([&] { return !errors.empty(); }));
  EXPECT_EQ(errors[0].code(), StatusCode::kResourceExhausted);
  EXPECT_NE(errors[0].message().find("max_line_bytes"), std::string::npos)
      << errors[0].message();
  (*small)->Close();
  RunFor(milliseconds(50));
}

}  // namespace
}  // namespace evsse::testing
