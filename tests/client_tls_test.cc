// evsse::Client over TLS, against a small event-stream server written here
// (evconnlistener + libevent OpenSSL bufferevents, a canned stream with ids
// that honours Last-Event-ID) and the certificates of
// tests/support/make_test_certs.sh: a trusted CA file, a refused wrong-name,
// expired or unknown-CA certificate (the error names host and reason),
// `insecure`, IP literals, no plain-text downgrade, SNI, resume across
// reconnects, the TCP options, and multi-MiB events and the parser limits.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/socket.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "evsse/client.h"
#include "run_loop.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

// CertDir: the test certificates, written once per test process into a
// temporary directory that is removed at exit.
std::string CertDir() {
  struct Dir {
    Dir() {
      char tmpl[] = "/tmp/evsse-tls-client.XXXXXX";
      if (!mkdtemp(tmpl)) return;
      path = tmpl;
      std::string cmd =
          "bash " EVSSE_SOURCE_DIR "/tests/support/make_test_certs.sh " + path;
      ok = std::system(cmd.c_str()) == 0;
    }
    ~Dir() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
    std::string path;
    bool ok = false;
  };
  static const Dir dir;
  return dir.ok ? dir.path : std::string();
}
std::string Cert(const std::string& name) { return CertDir() + "/" + name; }

// Request: what the server saw of one request.
struct Request {
  std::string sni;  // "" when the client sent none
  std::string host, last_event_id;
  bool resumed = false;   // the TLS session was resumed
  std::string client_cn;  // the client certificate's CN, if any
};

std::string HeaderValue(const std::string& head, const std::string& name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    size_t end = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, end - pos - 2);
    size_t colon = line.find(':');
    if (colon == name.size() &&
        strncasecmp(line.c_str(), name.c_str(), colon) == 0) {
      size_t v = line.find_first_not_of(' ', colon + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
    pos = end;
  }
  return "";
}

// SseServer: an event-stream server on 127.0.0.1 port 0, TLS with the given
// certificate or plain when cert is empty. Each request gets `retry: 20`,
// then events_per_connection events with ids following its Last-Event-ID
// (1, 2, ... without one), data "event N", preceded by one event of
// big_data when set; then the connection is closed, unless hold_open.
class SseServer {
 public:
  SseServer(event_base* base, const std::string& cert, const std::string& key)
      : base_(base) {
    if (!cert.empty()) {
      ctx_ = SSL_CTX_new(TLS_server_method());
      EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()), 1);
      EXPECT_EQ(
          SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM), 1);
    }
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_ = evconnlistener_new_bind(
        base, &OnAccept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
        reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    EXPECT_NE(listener_, nullptr);
    socklen_t len = sizeof sin;
    getsockname(evconnlistener_get_fd(listener_),
                reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
  }
  ~SseServer() {
    while (!conns_.empty()) Drop(*conns_.begin());
    evconnlistener_free(listener_);
    SSL_CTX_free(ctx_);
  }

  int port() const { return port_; }

  // RequireClientCert makes the server ask for a client certificate that
  // chains to `ca` and refuse a client without one.
  void RequireClientCert(const std::string& ca) {
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr), 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }

  int events_per_connection = 3;
  bool hold_open = false;
  bool silent = false;  // reads and never answers
  std::string big_data;

  std::vector<Request> requests;  // every request received, in order
  int accepted = 0;
  int tls_failures = 0;    // connections that ended before a request
  std::string raw_prefix;  // plain: the first bytes any connection sent

 private:
  struct Conn {
    SseServer* server = nullptr;
    bufferevent* bev = nullptr;
    std::string in, sni, client_cn;
    bool resumed = false;
    bool answered = false;
  };

  static void OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int,
                       void* arg) {
    auto* self = static_cast<SseServer*>(arg);
    ++self->accepted;
    bufferevent* bev =
        self->ctx_
            ? bufferevent_openssl_socket_new(
                  self->base_, fd, SSL_new(self->ctx_),
                  BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
            : bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE);
    auto* c = new Conn();
    c->server = self;
    c->bev = bev;
    self->conns_.insert(c);
    bufferevent_setcb(bev, &OnRead, nullptr, &OnEvent, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
  }

  static void OnEvent(bufferevent* bev, short what, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    if (what & BEV_EVENT_CONNECTED) {  // the TLS handshake is done
      const char* sni = SSL_get_servername(bufferevent_openssl_get_ssl(bev),
                                           TLSEXT_NAMETYPE_host_name);
      c->sni = sni ? sni : "";
      SSL* ssl = bufferevent_openssl_get_ssl(bev);
      c->resumed = SSL_session_reused(ssl) == 1;
      if (X509* peer = SSL_get1_peer_certificate(ssl)) {
        char cn[256] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                                  cn, sizeof cn);
        c->client_cn = cn;
        X509_free(peer);
      }
      return;
    }
    if (!c->answered) ++c->server->tls_failures;
    while (bufferevent_get_openssl_error(bev) != 0) {
    }
    c->server->Drop(c);
  }

  static void OnRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    SseServer* self = c->server;
    evbuffer* input = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(input);
    std::string bytes(n, '\0');
    evbuffer_remove(input, bytes.data(), n);
    if (!self->ctx_ && self->raw_prefix.size() < 64)
      self->raw_prefix += bytes.substr(0, 64 - self->raw_prefix.size());
    c->in += bytes;
    size_t end = c->in.find("\r\n\r\n");
    if (c->answered || self->silent) return;
    if (c->in.size() >= 4 && c->in.compare(0, 4, "GET ") != 0) {
      // What an HTTP server answers to a TLS ClientHello.
      c->answered = true;
      const std::string bad = "HTTP/1.1 400 Bad Request\r\n\r\n";
      bufferevent_write(bev, bad.data(), bad.size());
      bufferevent_setcb(bev, &OnRead, &OnWritten, &OnEvent, c);
      return;
    }
    if (end == std::string::npos) return;
    c->answered = true;
    std::string head = c->in.substr(0, end + 2);
    Request r{c->sni, HeaderValue(head, "Host"),
              HeaderValue(head, "Last-Event-ID"), c->resumed, c->client_cn};
    self->requests.push_back(r);
    std::string out =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nConnection: close\r\n\r\nretry: 20\n\n";
    int next =
        r.last_event_id.empty() ? 1 : std::atoi(r.last_event_id.c_str()) + 1;
    if (!self->big_data.empty()) out += "data: " + self->big_data + "\n\n";
    for (int i = 0; i < self->events_per_connection; ++i, ++next)
      out += "id: " + std::to_string(next) + "\ndata: event " +
             std::to_string(next) + "\n\n";
    bufferevent_write(bev, out.data(), out.size());
    if (!self->hold_open)
      bufferevent_setcb(bev, &OnRead, &OnWritten, &OnEvent, c);
  }

  static void OnWritten(bufferevent* bev, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
      c->server->Drop(c);
  }

  void Drop(Conn* c) {
    conns_.erase(c);
    bufferevent_free(c->bev);
    delete c;
  }

  event_base* base_;
  SSL_CTX* ctx_ = nullptr;
  evconnlistener* listener_ = nullptr;
  int port_ = 0;
  std::set<Conn*> conns_;
};

// Record: what a client reported.
struct Record {
  int opens = 0, closes = 0;
  std::vector<Client::Event> events;
  std::vector<Status> errors;
  Status close_status;
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (auto& e : events) out.push_back(e.last_event_id);
    return out;
  }
};

class ClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << "make_test_certs.sh failed";
    base_ = event_base_new();
  }
  void TearDown() override {
    clients_.clear();
    servers_.clear();
    RunLoopFor(base_, milliseconds(20));  // the client frees connections
    event_base_free(base_);
  }

  // Serve starts a server with the named certificate ("" = plain).
  SseServer& Serve(const std::string& name) {
    servers_.push_back(std::make_unique<SseServer>(
        base_, name.empty() ? "" : Cert(name + ".pem"),
        name.empty() ? "" : Cert(name + ".key")));
    return *servers_.back();
  }

  ClientOptions Opts(const std::string& host, const SseServer& s) {
    ClientOptions o;
    o.url = "https://" + host + ":" + std::to_string(s.port()) + "/events";
    o.ca_file = Cert("ca.pem");
    o.initial_retry = milliseconds(20);
    o.max_backoff = milliseconds(200);
    return o;
  }

  Client* Start(ClientOptions o, Record* r) {
    auto c = Client::Create(base_, std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    Client* raw = c->get();
    raw->OnOpen([r] { ++r->opens; });
    raw->OnEvent([r](const Client::Event& e) { r->events.push_back(e); });
    raw->OnError([r](const Status& s) { r->errors.push_back(s); });
    raw->OnClose([r](const Status& s) {
      ++r->closes;
      r->close_status = s;
    });
    EXPECT_TRUE(raw->Start().ok());
    clients_.push_back(std::move(c.value()));
    return raw;
  }

  // NewRecord: a Record that outlives the clients (their on_close fires
  // when TearDown destroys them).
  Record& NewRecord() { return records_.emplace_back(); }

  bool RunUntil(const std::function<bool()>& pred) {
    return RunLoopUntil(base_, pred, milliseconds(10000));
  }

  // ExpectRefused: the client fails for good with kFailedPrecondition whose
  // message has every one of `parts`, and the server never got a request.
  void ExpectRefused(const Record& r, const SseServer& s,
                     const std::vector<std::string>& parts) {
    ASSERT_EQ(r.closes, 1);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(r.close_status.message(), r.errors[0].message());
    for (const std::string& p : parts)
      EXPECT_NE(r.errors[0].message().find(p), std::string::npos)
          << "no \"" << p << "\" in: " << r.errors[0].message();
    EXPECT_EQ(r.opens, 0);
    EXPECT_TRUE(s.requests.empty());
  }

  event_base* base_ = nullptr;
  std::vector<std::unique_ptr<SseServer>> servers_;
  std::deque<Record> records_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(ClientTlsTest, StreamsAndResumesWithCaFileSendingSni) {
  SseServer& s = Serve("server");
  Record& r = NewRecord();
  Start(Opts("localhost", s), &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 9; }));
  // Three connections, each resuming where the last one ended.
  EXPECT_EQ(r.ids(), (std::vector<std::string>{"1", "2", "3", "4", "5", "6",
                                               "7", "8", "9"}));
  EXPECT_EQ(r.events[4].data, "event 5");
  ASSERT_GE(s.requests.size(), 3u);
  EXPECT_EQ(s.requests[0].last_event_id, "");
  EXPECT_EQ(s.requests[1].last_event_id, "3");
  EXPECT_EQ(s.requests[2].last_event_id, "6");
  // Reconnects resume the TLS session of the previous connection.
  EXPECT_FALSE(s.requests[0].resumed);
  EXPECT_TRUE(s.requests[1].resumed);
  EXPECT_TRUE(s.requests[2].resumed);
  for (const Request& q : s.requests) {
    EXPECT_EQ(q.sni, "localhost");
    EXPECT_EQ(q.host, "localhost:" + std::to_string(s.port()));
  }
  EXPECT_GE(r.opens, 3);
  EXPECT_EQ(r.closes, 0);
  EXPECT_EQ(s.tls_failures, 0);
  // A server closing without close_notify ends the stream like a close.
  for (const Status& e : r.errors)
    EXPECT_EQ(e.message(), "stream ended by server") << e.ToString();
}

TEST_F(ClientTlsTest, RefusesWrongName) {
  SseServer& s = Serve("wrongname");
  Record& r = NewRecord();
  Start(Opts("localhost", s), &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ExpectRefused(
      r, s,
      {"TLS handshake with localhost:" + std::to_string(s.port()),
       "certificate verify failed", "hostname mismatch", "DNS:wrong.example"});
}

TEST_F(ClientTlsTest, RefusesExpiredCertificate) {
  SseServer& s = Serve("expired");
  Record& r = NewRecord();
  Start(Opts("localhost", s), &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ExpectRefused(r, s,
                {"localhost:" + std::to_string(s.port()),
                 "certificate has expired", "2021"});
}

TEST_F(ClientTlsTest, RefusesUnknownCaWithoutCaFile) {
  SseServer& s = Serve("server");
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.ca_file.clear();  // the system store does not know the test CA
  Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.closes == 1; }));
  ExpectRefused(
      r, s,
      {"localhost", "unable to get local issuer certificate", "evsse test CA"});
}

TEST_F(ClientTlsTest, RefusedCertificateIsRetriedWhenAskedFor) {
  SseServer& s = Serve("expired");
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.reconnect_on_http_error = true;
  Client* c = Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.errors.size() >= 3; }));
  EXPECT_EQ(r.closes, 0);
  EXPECT_EQ(c->ready_state(), Client::ReadyState::kConnecting);
  for (const Status& e : r.errors)
    EXPECT_NE(e.message().find("expired"), std::string::npos);
  EXPECT_TRUE(s.requests.empty());
}

// ca_dir: a directory of hashed CA certificates (openssl rehash).
TEST_F(ClientTlsTest, CaDirTrustsItsHashedCertificates) {
  const std::string dir = CertDir() + "/cadir";
  const std::string cmd = "mkdir -p " + dir + " && cp " + Cert("ca.pem") + " " +
                          dir + " && openssl rehash " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  SseServer& s = Serve("server");
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.ca_file.clear();
  o.ca_dir = dir;
  Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 3; }));
  EXPECT_TRUE(r.errors.empty() ||
              r.errors[0].message() == "stream ended by server");
}

TEST_F(ClientTlsTest, InsecureConnectsToAnyCertificate) {
  for (const char* name : {"wrongname", "expired"}) {
    SseServer& s = Serve(name);
    Record& r = NewRecord();
    ClientOptions o = Opts("localhost", s);
    o.ca_file.clear();
    o.insecure = true;
    Start(o, &r);
    ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 3; })) << name;
    EXPECT_EQ(r.events[0].data, "event 1");
    EXPECT_EQ(s.requests[0].sni, "localhost");
    EXPECT_EQ(r.closes, 0);
  }
}

TEST_F(ClientTlsTest, IpLiteralIsMatchedAgainstIpAddressesWithoutSni) {
  SseServer& good = Serve("server");  // SAN IP:127.0.0.1
  Record& ok = NewRecord();
  Start(Opts("127.0.0.1", good), &ok);
  ASSERT_TRUE(RunUntil([&] { return ok.events.size() >= 3; }));
  EXPECT_EQ(good.requests[0].sni, "");  // RFC 6066: no IP in SNI

  SseServer& bad = Serve("wrongname");  // DNS:wrong.example only
  Record& refused = NewRecord();
  Start(Opts("127.0.0.1", bad), &refused);
  ASSERT_TRUE(RunUntil([&] { return refused.closes == 1; }));
  ExpectRefused(refused, bad,
                {"127.0.0.1:" + std::to_string(bad.port()),
                 "IP address mismatch", "not 127.0.0.1"});
}

// An https URL on a plain-text server: every attempt is a TLS handshake
// that fails (retried, as the network may be at fault), and no request is
// ever sent in plain text.
TEST_F(ClientTlsTest, HttpsNeverFallsBackToPlainText) {
  SseServer& s = Serve("");
  Record& r = NewRecord();
  Start(Opts("127.0.0.1", s), &r);
  ASSERT_TRUE(RunUntil([&] { return r.errors.size() >= 3; }));
  EXPECT_EQ(r.closes, 0);
  EXPECT_EQ(r.opens, 0);
  for (const Status& e : r.errors) {
    EXPECT_EQ(e.code(), StatusCode::kUnavailable);
    EXPECT_NE(e.message().find("TLS handshake with 127.0.0.1:" +
                               std::to_string(s.port()) + " failed"),
              std::string::npos)
        << e.message();
  }
  EXPECT_GE(s.accepted, 3);
  EXPECT_TRUE(s.requests.empty());
  ASSERT_FALSE(s.raw_prefix.empty());
  EXPECT_EQ(s.raw_prefix[0], '\x16');  // a TLS handshake record
}

// A server that accepts the connection but never answers the handshake is
// bounded by connect_timeout, and retried.
TEST_F(ClientTlsTest, StalledHandshakeTimesOut) {
  SseServer& s = Serve("");
  s.silent = true;
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.connect_timeout = milliseconds(200);
  Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.errors.size() >= 2; }));
  for (const Status& e : r.errors)
    EXPECT_EQ(e.ToString(), "unavailable: no response from localhost:" +
                                std::to_string(s.port()) + " within 200 ms");
  EXPECT_EQ(r.closes, 0);
  EXPECT_GE(s.accepted, 2);
}

// fallback_urls over TLS: each URL's host is verified and sent as SNI on
// its own, and the stream resumes on the next node with Last-Event-ID.
TEST_F(ClientTlsTest, FailsOverAcrossTlsUrls) {
  SseServer& a = Serve("server");
  SseServer& b = Serve("server2");
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", a);
  o.fallback_urls = {"https://127.0.0.1:" + std::to_string(b.port()) +
                     "/events"};
  Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 6; }));
  EXPECT_EQ(r.ids(), (std::vector<std::string>{"1", "2", "3", "4", "5", "6"}));
  ASSERT_GE(a.requests.size(), 1u);
  ASSERT_GE(b.requests.size(), 1u);
  EXPECT_EQ(a.requests[0].sni, "localhost");
  EXPECT_EQ(b.requests[0].sni, "");
  EXPECT_EQ(b.requests[0].last_event_id, "3");
  EXPECT_EQ(b.requests[0].host, "127.0.0.1:" + std::to_string(b.port()));
  EXPECT_FALSE(b.requests[0].resumed);  // another server: a full handshake
}

// Closing mid-handshake, and destroying the client inside on_error of a
// refused certificate, end everything once (valgrind-clean).
TEST_F(ClientTlsTest, CloseMidHandshakeAndDestroyOnRefusal) {
  SseServer& stalled = Serve("");
  stalled.silent = true;
  Record& r = NewRecord();
  Client* c = Start(Opts("localhost", stalled), &r);
  ASSERT_TRUE(RunUntil([&] { return stalled.accepted == 1; }));
  c->Close();
  EXPECT_EQ(r.closes, 1);
  EXPECT_EQ(r.close_status.code(), StatusCode::kCancelled);

  SseServer& expired = Serve("expired");
  auto created = Client::Create(base_, Opts("localhost", expired));
  ASSERT_TRUE(created.ok());
  std::unique_ptr<Client> doomed = std::move(created.value());
  int errors = 0, closes = 0;
  doomed->OnError([&](const Status& s) {
    ++errors;
    EXPECT_NE(s.message().find("expired"), std::string::npos);
    doomed.reset();
  });
  doomed->OnClose([&](const Status&) { ++closes; });
  ASSERT_TRUE(doomed->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return !doomed; }));
  RunLoopFor(base_, milliseconds(50));
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(closes, 1);  // fired by the destructor, inside on_error
}

TEST_F(ClientTlsTest, TcpOptionsAreSetOnTheTlsSocket) {
  SseServer& s = Serve("server");
  s.hold_open = true;
  Record& r = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.dead_peer_timeout = milliseconds(12000);
  Start(o, &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 3; }));
  // The client's end: the socket whose peer is the server's port.
  int fd = -1;
  for (int i = 3; i < 1024 && fd < 0; ++i) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (getpeername(i, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        peer.sin_family == AF_INET && ntohs(peer.sin_port) == s.port())
      fd = i;
  }
  ASSERT_GE(fd, 0);
  auto get = [fd](int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    getsockopt(fd, level, name, &v, &len);
    return v;
  };
  EXPECT_EQ(get(IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_USER_TIMEOUT), 12000);
  EXPECT_EQ(get(SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPIDLE), 6);
}

// Events of several MiB pass by default over TLS; one whose data lines
// together pass max_data_bytes is an error naming the option.
TEST_F(ClientTlsTest, MultiMegabyteEventsAndTheDataLimit) {
  SseServer& s = Serve("server");
  s.big_data = std::string(5 << 20, 'x');
  s.events_per_connection = 1;
  s.hold_open = true;
  Record& r = NewRecord();
  Start(Opts("localhost", s), &r);
  ASSERT_TRUE(RunUntil([&] { return r.events.size() >= 2; }));
  EXPECT_EQ(r.events[0].data.size(), 5u << 20);
  EXPECT_EQ(r.events[1].data, "event 1");
  EXPECT_TRUE(r.errors.empty());

  // Three data lines of 512 KiB: each line passes max_line_bytes, the event
  // (1.5 MiB) does not pass max_data_bytes = 1 MiB.
  SseServer& t = Serve("server");
  std::string half(512 << 10, 'y');
  t.big_data = half + "\ndata: " + half + "\ndata: " + half;
  Record& limited = NewRecord();
  ClientOptions o = Opts("localhost", t);
  o.max_data_bytes = 1 << 20;
  Start(o, &limited);
  ASSERT_TRUE(RunUntil([&] { return !limited.errors.empty(); }));
  EXPECT_EQ(limited.errors[0].code(), StatusCode::kResourceExhausted);
  EXPECT_NE(limited.errors[0].message().find("max_data_bytes (1048576 bytes)"),
            std::string::npos)
      << limited.errors[0].message();
  EXPECT_TRUE(limited.events.empty());
}

// Mutual TLS: a server that requires a client certificate gets the one in
// client_cert_file / client_key_file; without it the attempt fails with
// the server's alert (and is retried).
TEST_F(ClientTlsTest, ClientCertificateForMutualTls) {
  SseServer& s = Serve("server");
  s.RequireClientCert(Cert("ca.pem"));
  Record& with = NewRecord();
  ClientOptions o = Opts("localhost", s);
  o.client_cert_file = Cert("client.pem");
  o.client_key_file = Cert("client.key");
  Start(o, &with);
  ASSERT_TRUE(RunUntil([&] { return with.events.size() >= 3; }));
  EXPECT_EQ(s.requests[0].client_cn, "evsse test client");

  SseServer& t = Serve("server");
  t.RequireClientCert(Cert("ca.pem"));
  Record& without = NewRecord();
  Start(Opts("localhost", t), &without);
  ASSERT_TRUE(RunUntil([&] { return without.errors.size() >= 2; }));
  EXPECT_EQ(without.errors[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(without.errors[0].message().find("certificate required"),
            std::string::npos)
      << without.errors[0].message();
  EXPECT_TRUE(t.requests.empty());
  EXPECT_EQ(without.opens, 0);
}

TEST_F(ClientTlsTest, CreateRefusesBadTlsOptions) {
  ClientOptions o;
  o.url = "https://localhost:1/events";
  o.ca_file = CertDir() + "/no-such.pem";
  auto r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ca_file \"" + o.ca_file + "\""),
            std::string::npos)
      << r.status().message();

  o.ca_file = Cert("ca.key");  // not a certificate
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot load"), std::string::npos);

  o.ca_file = Cert("ca.pem");
  o.client_cert_file = Cert("client.pem");
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("go together"), std::string::npos);
  o.client_key_file = Cert("server.key");
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("key values mismatch"), std::string::npos)
      << r.status().message();
  o.client_cert_file = Cert("nope.pem");
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("client_cert_file \"" + Cert("nope.pem") +
                                      "\": cannot load: No such file"),
            std::string::npos)
      << r.status().message();
  o.client_cert_file.clear();
  o.client_key_file.clear();

  o.fallback_urls = {"http://localhost:2/events"};
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("differ in scheme"), std::string::npos);

  o.url = "ftp://localhost/events";
  o.fallback_urls.clear();
  r = Client::Create(base_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("http:// and https://"),
            std::string::npos);
}

}  // namespace
}  // namespace evsse::testing
