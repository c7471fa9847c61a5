// evsse-alerts over TLS (`listen ... ssl;`): streams and publishes over
// HTTPS verified against the test CA, SIGHUP reloading the certificate
// (open streams go on, new connections get server2.pem's certificate) and a
// bad key on reload (a file:line error; the running certificate stays).
// The real binary, as alerts_test runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "alerts_process.h"
#include "tls_client.h"

namespace evsse::testing {
namespace {

std::string Cert(const std::string& name) {
  return TestCertificates() + "/" + name;
}

// Conf: a TLS server with `leaf`.pem and `key`.key. TLS errors are reported
// at the ssl_certificate line (3); the message names the file at fault.
std::string Conf(const std::string& leaf, const std::string& key) {
  return "server {\n"
         "  listen 127.0.0.1:0 ssl;\n"
         "  ssl_certificate " +
         Cert(leaf + ".pem") +
         ";\n"
         "  ssl_certificate_key " +
         Cert(key + ".key") +
         ";\n"
         "  publish_token " +
         std::string(kAlertsToken) +
         ";\n"
         "  endpoint subscribe /alerts/stream { heartbeat 15s; }\n"
         "}\n";
}

TlsClientOptions Trusting() {
  TlsClientOptions o;
  o.ca_file = Cert("ca.pem");
  return o;
}

// Poll drives clients of another process: poll, then a short pause.
bool PollUntil(const std::vector<TlsClient*>& clients,
               const std::function<bool()>& pred) {
  return WaitUntil([&] {
    for (TlsClient* c : clients) c->Poll();
    return pred();
  });
}

std::unique_ptr<TlsClient> Stream(int port) {
  auto c = std::make_unique<TlsClient>(
      port,
      "GET /alerts/stream?topic=ops HTTP/1.1\r\nHost: localhost\r\n"
      "Accept: text/event-stream\r\n\r\n",
      Trusting());
  EXPECT_TRUE(PollUntil({c.get()}, [&] {
    return c->status != 0 || c->failed || c->closed;
  })) << c->error;
  EXPECT_EQ(c->status, 200) << c->error;
  return c;
}

// PostAlert publishes over HTTPS and returns the status.
int PostAlert(int port, const std::string& title) {
  std::string body = AlertJson("critical", "ops", title);
  TlsClient c(port,
              "POST /alerts HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
              "Bearer " +
                  std::string(kAlertsToken) +
                  "\r\nContent-Type: application/json\r\nContent-Length: " +
                  std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n" + body,
              Trusting());
  EXPECT_TRUE(PollUntil({&c}, [&] { return c.closed || c.failed; }));
  EXPECT_FALSE(c.failed) << c.error;
  return c.status;
}

class AlertsTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kAlertsBin[0] == '\0') GTEST_SKIP() << "evsse-alerts not built";
  }
};

TEST_F(AlertsTlsTest, StreamsOverHttpsAndSighupReloadsTheCertificate) {
  AlertsServer server(Conf("server", "server"));
  ASSERT_TRUE(server.Started());
  EXPECT_TRUE(server.WaitLog("tls=on"));
  auto before = Stream(server.port());
  EXPECT_EQ(before->verify_result, X509_V_OK);
  EXPECT_EQ(before->peer_fingerprint,
            CertificateFingerprint(Cert("server.pem")));
  ASSERT_EQ(PostAlert(server.port(), "one"), 200);
  ASSERT_TRUE(
      PollUntil({before.get()}, [&] { return !before->events.empty(); }));
  EXPECT_EQ(before->events[0].type, "critical");

  // SIGHUP with server2: new connections get it, the open stream goes on.
  server.Rewrite(Conf("server2", "server2"));
  server.Signal(SIGHUP);
  ASSERT_TRUE(server.WaitLog("msg=reloaded"));
  EXPECT_THAT(server.Log(), ::testing::HasSubstr("changed=tls"));
  auto after = Stream(server.port());
  EXPECT_EQ(after->verify_result, X509_V_OK);
  EXPECT_EQ(after->peer_fingerprint,
            CertificateFingerprint(Cert("server2.pem")));

  // A key that does not match: the reload fails at the key's file:line and
  // the running certificate stays.
  server.Rewrite(Conf("server", "server2"));
  server.Signal(SIGHUP);
  ASSERT_TRUE(server.WaitLog("reload failed"));
  std::string log = server.Log();
  EXPECT_THAT(log,
              ::testing::HasSubstr(server.conf_path() + ":3: TLS: key file"));
  EXPECT_THAT(log, ::testing::HasSubstr("mismatch"));
  auto third = Stream(server.port());
  EXPECT_EQ(third->peer_fingerprint,
            CertificateFingerprint(Cert("server2.pem")));

  // Every stream, the one opened before both reloads included, gets the
  // next alert.
  ASSERT_EQ(PostAlert(server.port(), "two"), 200);
  ASSERT_TRUE(PollUntil({before.get(), after.get(), third.get()}, [&] {
    return before->events.size() == 2 && after->events.size() == 1 &&
           third->events.size() == 1;
  }));
  for (TlsClient* c : {before.get(), after.get(), third.get()}) {
    EXPECT_FALSE(c->failed) << c->error;
    EXPECT_NE(c->events.back().data.find("\"two\""), std::string::npos)
        << c->events.back().data;
  }
}

TEST_F(AlertsTlsTest, ABadCertificateAtStartIsAFileLineError) {
  AlertsServer server(Conf("absent", "server"));
  EXPECT_EQ(server.ExitStatus(), 1);
  EXPECT_THAT(server.Log(),
              ::testing::HasSubstr(server.conf_path() +
                                   ":3: TLS: cannot read certificate file"));
}

}  // namespace
}  // namespace evsse::testing
