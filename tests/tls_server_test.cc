// TLS on the server, on both adapters (evsse::evhttp::ServeTls,
// evsse::evhtp::ServeTls): a real OpenSSL client verifies the chain against
// the test CA, events arrive exactly, old protocol versions and clients
// without a certificate (mutual TLS) are refused, a reload gives new
// connections the new certificate while open streams go on, and bad files
// are errors that change nothing.
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "evsse/evhtp.h"
#include "evsse/evhttp.h"
#include "evsse/tls.h"
#include "http_fixture.h"
#include "tls_client.h"

namespace evsse::testing {
namespace {

const char kStream[] =
    "GET /events?topic=t HTTP/1.1\r\nHost: localhost\r\n"
    "Accept: text/event-stream\r\n\r\n";

std::string Cert(const std::string& name) {
  return TestCertificates() + "/" + name;
}

TlsOptions ServerTls(const std::string& leaf = "server") {
  TlsOptions o;
  o.certificate_file = Cert(leaf + ".pem");
  o.key_file = Cert(leaf + ".key");
  return o;
}

TlsClientOptions Trusting() {
  TlsClientOptions o;
  o.ca_file = Cert("ca.pem");
  return o;
}

class TlsServerTest : public OnEveryAdapter<HttpFixture> {
 protected:
  Status Serve(const TlsOptions& o) {
    return adapter_ == Adapter::kEvhttp ? evhttp::ServeTls(http_, o)
                                        : evhtp::ServeTls(htp_, o);
  }
  std::unique_ptr<TlsClient> Connect(const TlsClientOptions& o = Trusting(),
                                     const std::string& request = kStream) {
    return std::make_unique<TlsClient>(port_, request, o);
  }
  // Subscribed: the handshake is done and the stream's head arrived.
  bool WaitSubscribed(TlsClient* c) {
    return RunUntil([&] {
             c->Poll();
             return c->status != 0 || c->failed || c->closed;
           }) &&
           c->status == 200;
  }
  // Ends: the client sees a failure or a close.
  bool WaitRefused(TlsClient* c) {
    return RunUntil([&] {
      c->Poll();
      return c->failed || c->closed;
    });
  }
};

TEST_P(TlsServerTest, EventsArriveExactlyOverAVerifiedChain) {
  HubOptions big;
  big.max_event_bytes = 2 << 20;
  StreamOptions deep;
  deep.max_queued_bytes = 8 << 20;
  StartServer(big, deep);
  ASSERT_TRUE(Serve(ServerTls()).ok());
  auto c = Connect();
  ASSERT_TRUE(WaitSubscribed(c.get())) << c->error;
  EXPECT_EQ(c->verify_result, X509_V_OK);
  EXPECT_EQ(c->peer_fingerprint, CertificateFingerprint(Cert("server.pem")));
  EXPECT_EQ(c->alpn, "http/1.1");
  EXPECT_EQ(c->version, "TLSv1.3");
  // Small events one by one, bursts that coalesce, and events larger than a
  // TLS record (16 KiB) and than the socket buffer.
  std::vector<std::string> want;
  for (int i = 0; i < 50; ++i) {
    want.push_back("small " + std::to_string(i));
    Publish("t", want.back());
  }
  for (int i = 0; i < 100; ++i) {
    want.push_back("burst " + std::to_string(i));
    ASSERT_TRUE(hub_->Publish("t", {"", want.back()}).ok());
  }
  for (size_t n : {16384u, 100000u, 1u << 20}) {
    want.push_back(std::string(n, 'x') + std::to_string(n));
    ASSERT_TRUE(hub_->Publish("t", {"", want.back()}).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    c->Poll();
    return c->events.size() >= want.size() || c->failed;
  })) << c->events.size();
  EXPECT_EQ(c->datas(), want);
  EXPECT_FALSE(c->failed) << c->error;
}

// A reader that stops: the adapters' direct SSL_write meets a full socket
// (small events, no coalescing, so each is its own write), hands the rest
// to the bufferevent, which must retry the same bytes; once the reader
// resumes, every event arrives once, in order.
TEST_P(TlsServerTest, DirectWritesThatBlockAreRetriedInOrder) {
  HubOptions hub;
  hub.coalesce_window = Millis(0);
  StreamOptions deep;
  deep.max_queued_bytes = 64 << 20;
  StartServer(hub, deep);
  ASSERT_TRUE(Serve(ServerTls()).ok());
  TlsClientOptions o = Trusting();
  o.receive_buffer = 4096;
  auto c = Connect(o);
  ASSERT_TRUE(WaitSubscribed(c.get())) << c->error;
  c->paused = true;
  std::vector<std::string> want;
  const std::string pad(4000, 'p');
  for (int i = 0; i < 3000; ++i) {
    want.push_back(std::to_string(i) + pad);
    ASSERT_TRUE(hub_->Publish("t", {"", want.back()}).ok());
    event_base_loop(base_, EVLOOP_NONBLOCK);  // the event is written now
  }
  c->paused = false;
  ASSERT_TRUE(RunUntil(
      [&] {
        c->Poll();
        return c->events.size() >= want.size() || c->failed || c->closed;
      },
      std::chrono::seconds(30)))
      << c->events.size();
  EXPECT_FALSE(c->failed) << c->error;
  ASSERT_EQ(c->events.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(c->events[i].data, want[i]) << i;
}

// HTTP/1.0: a raw body, no chunk framing, over TLS too.
TEST_P(TlsServerTest, HttpTenStreamOverTls) {
  StartServer();
  ASSERT_TRUE(Serve(ServerTls()).ok());
  auto c = Connect(Trusting(),
                   "GET /events?topic=t HTTP/1.0\r\nHost: localhost\r\n"
                   "Accept: text/event-stream\r\n\r\n");
  ASSERT_TRUE(WaitSubscribed(c.get())) << c->error;
  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) {
    want.push_back("ten " + std::to_string(i));
    ASSERT_TRUE(hub_->Publish("t", {"", want.back()}).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    c->Poll();
    return c->events.size() >= want.size() || c->failed || c->closed;
  }));
  EXPECT_EQ(c->datas(), want);
}

TEST_P(TlsServerTest, TlsTwelveWorksAndOlderVersionsAreRefused) {
  StartServer();
  ASSERT_TRUE(Serve(ServerTls()).ok());
  TlsClientOptions twelve = Trusting();
  twelve.max_version = TLS1_2_VERSION;
  auto c = Connect(twelve);
  ASSERT_TRUE(WaitSubscribed(c.get())) << c->error;
  EXPECT_EQ(c->version, "TLSv1.2");
  Publish("t", "over 1.2");
  ASSERT_TRUE(RunUntil([&] {
    c->Poll();
    return !c->events.empty();
  }));
  EXPECT_EQ(c->events[0].data, "over 1.2");

  TlsClientOptions old = Trusting();
  old.min_version = TLS1_VERSION;
  old.max_version = TLS1_1_VERSION;
  auto refused = Connect(old);
  ASSERT_TRUE(WaitRefused(refused.get()));
  EXPECT_TRUE(refused->failed);
  EXPECT_FALSE(refused->handshake_done);
  EXPECT_EQ(refused->status, 0);
}

TEST_P(TlsServerTest, MinimumVersionThirteenRefusesTwelve) {
  StartServer();
  TlsOptions o = ServerTls();
  o.min_version = TlsVersion::kTls13;
  ASSERT_TRUE(Serve(o).ok());
  TlsClientOptions twelve = Trusting();
  twelve.max_version = TLS1_2_VERSION;
  auto c = Connect(twelve);
  ASSERT_TRUE(WaitRefused(c.get()));
  EXPECT_TRUE(c->failed);
  EXPECT_NE(c->error.find("protocol version"), std::string::npos) << c->error;
  EXPECT_EQ(c->status, 0);
}

TEST_P(TlsServerTest, MutualTlsNeedsAClientCertificate) {
  StartServer();
  TlsOptions o = ServerTls();
  o.client_ca_file = Cert("ca.pem");
  ASSERT_TRUE(Serve(o).ok());
  // Without a certificate: TLS 1.3 finishes the client's side of the
  // handshake first, then the server's alert ends the connection before any
  // response.
  auto anonymous = Connect();
  ASSERT_TRUE(WaitRefused(anonymous.get()));
  EXPECT_TRUE(anonymous->failed);
  EXPECT_NE(anonymous->error.find("certificate required"), std::string::npos)
      << anonymous->error;
  EXPECT_EQ(anonymous->status, 0);
  TlsClientOptions good = Trusting();
  good.cert_file = Cert("client.pem");
  good.key_file = Cert("client.key");
  auto c = Connect(good);
  ASSERT_TRUE(WaitSubscribed(c.get())) << c->error;
  Publish("t", "for a known client");
  ASSERT_TRUE(RunUntil([&] {
    c->Poll();
    return !c->events.empty();
  }));
  EXPECT_EQ(c->events[0].data, "for a known client");
}

TEST_P(TlsServerTest, ReloadServesNewConnectionsAndKeepsOpenStreams) {
  StartServer();
  ASSERT_TRUE(Serve(ServerTls("server")).ok());
  auto before = Connect();
  ASSERT_TRUE(WaitSubscribed(before.get())) << before->error;
  ASSERT_EQ(before->peer_fingerprint,
            CertificateFingerprint(Cert("server.pem")));

  ASSERT_TRUE(Serve(ServerTls("server2")).ok());
  auto after = Connect();
  ASSERT_TRUE(WaitSubscribed(after.get())) << after->error;
  EXPECT_EQ(after->verify_result, X509_V_OK);
  EXPECT_EQ(after->peer_fingerprint,
            CertificateFingerprint(Cert("server2.pem")));
  EXPECT_NE(after->peer_fingerprint, before->peer_fingerprint);

  // A bad reload changes nothing: the message names the file, and the next
  // connection still gets server2.
  TlsOptions missing = ServerTls("server2");
  missing.certificate_file = Cert("absent.pem");
  Status s = Serve(missing);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("absent.pem"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s.message();
  auto third = Connect();
  ASSERT_TRUE(WaitSubscribed(third.get())) << third->error;
  EXPECT_EQ(third->peer_fingerprint,
            CertificateFingerprint(Cert("server2.pem")));

  // Every stream, the one opened before the reloads included, gets the
  // events published after them.
  Publish("t", "after the reload");
  for (TlsClient* c : {before.get(), after.get(), third.get()}) {
    ASSERT_TRUE(RunUntil([&] {
      c->Poll();
      return !c->events.empty() || c->failed || c->closed;
    }));
    ASSERT_EQ(c->events.size(), 1u);
    EXPECT_EQ(c->events[0].data, "after the reload");
  }
}

TEST_P(TlsServerTest, BadFilesAreErrorsNamingTheFile) {
  StartServer();
  TlsOptions mismatch = ServerTls("server");
  mismatch.key_file = Cert("server2.key");
  Status s = Serve(mismatch);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("server2.key"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("mismatch"), std::string::npos) << s.message();

  TlsOptions not_pem = ServerTls("server");
  not_pem.certificate_file = Cert("spki.txt");
  s = Serve(not_pem);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("certificate file"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("spki.txt"), std::string::npos) << s.message();

  TlsOptions ciphers = ServerTls("server");
  ciphers.ciphers = "NOT-A-CIPHER";
  s = Serve(ciphers);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("NOT-A-CIPHER"), std::string::npos) << s.message();

  TlsOptions none;
  EXPECT_FALSE(Serve(none).ok());
  TlsOptions backwards = ServerTls();
  backwards.min_version = TlsVersion::kTls13;
  backwards.max_version = TlsVersion::kTls12;
  EXPECT_FALSE(Serve(backwards).ok());

  // None of that turned TLS on: the server still speaks plain HTTP.
  auto plain = Get("/events?topic=t");
  ASSERT_TRUE(RunUntil([&] { return plain->has_head(); }));
  EXPECT_EQ(plain->status(), 200);
}

// ServerSideNoDelay returns TCP_NODELAY of every accepted connection of this
// process on `port` (the server runs in the test process).
std::vector<int> ServerSideNoDelay(int port) {
  std::vector<int> out;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = d ? readdir(d) : nullptr) {
    int fd = std::atoi(e->d_name);
    sockaddr_in local{}, peer{};
    socklen_t n = sizeof local, m = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n) != 0 ||
        local.sin_family != AF_INET || ntohs(local.sin_port) != port ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &m) != 0)
      continue;  // not a socket, another port, or the listener
    int v = 0;
    socklen_t len = sizeof v;
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    out.push_back(v);
  }
  if (d) closedir(d);
  return out;
}

// Over TLS a response's head and body are two records (two sends): with
// Nagle's algorithm the second would wait for the client's delayed ACK.
TEST_P(TlsServerTest, EveryTlsConnectionHasNoDelay) {
  StartServer();
  ASSERT_TRUE(Serve(ServerTls()).ok());
  std::string body = "hello";
  auto c = Connect(Trusting(),
                   "POST /publish?topic=t HTTP/1.1\r\n"
                   "Host: localhost\r\nContent-Length: 5\r\n\r\n" +
                       body);
  ASSERT_TRUE(RunUntil([&] {
    c->Poll();
    return c->status != 0 || c->failed;
  })) << c->error;
  EXPECT_EQ(c->status, 200);
  std::vector<int> nodelay = ServerSideNoDelay(port_);
  ASSERT_EQ(nodelay.size(), 1u);  // the publish connection, kept alive
  EXPECT_NE(nodelay[0], 0);
}

INSTANTIATE_TEST_SUITE_P(Adapters, TlsServerTest, EveryAdapter(), AdapterName);

TEST(TlsVersionTest, NamesRoundTripAndOldVersionsAreRefusedByName) {
  EXPECT_EQ(*ParseTlsVersion("TLSv1.2"), TlsVersion::kTls12);
  EXPECT_EQ(*ParseTlsVersion("TLSv1.3"), TlsVersion::kTls13);
  EXPECT_STREQ(TlsVersionName(TlsVersion::kTls13), "TLSv1.3");
  auto old = ParseTlsVersion("TLSv1.1");
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("not supported"), std::string::npos);
  EXPECT_FALSE(ParseTlsVersion("tls1.2").ok());
}

}  // namespace
}  // namespace evsse::testing
