// Test support: a TLS client for the server tests, on a non-blocking
// loopback socket driven by Poll (as TestClient is), with OpenSSL directly:
// it verifies the server's chain against a given CA file and the name
// "localhost", and records what the handshake showed (verification result,
// the server's certificate, ALPN) so that tests can assert on them.
#ifndef EVSSE_TESTS_SUPPORT_TLS_CLIENT_H_
#define EVSSE_TESTS_SUPPORT_TLS_CLIENT_H_

#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "evsse/stream_parser.h"
#include "http_response.h"

namespace evsse::testing {

struct TlsClientOptions {
  std::string ca_file;    // trust anchor; empty: verify nothing
  std::string cert_file;  // client certificate (mutual TLS), optional
  std::string key_file;
  int min_version = 0;  // TLS1_2_VERSION...; 0: OpenSSL's default
  int max_version = 0;
  int receive_buffer = 0;  // SO_RCVBUF before connecting; 0: the default
};

class TlsClient {
 public:
  // Connects to 127.0.0.1:port and sends `request` once the handshake is
  // done.
  TlsClient(int port, std::string request, const TlsClientOptions& options);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // Poll drives the handshake, sends the request and reads what arrived.
  void Poll();

  // paused: Poll reads nothing (a reader that stopped), so the server's
  // writes back up.
  bool paused = false;
  bool handshake_done = false;
  bool failed = false;  // handshake or read error (see error)
  bool closed = false;  // the server closed (cleanly or not)
  std::string error;    // OpenSSL's reason for a failure
  long verify_result = -1;
  std::string peer_fingerprint;  // SHA-256 of the server's certificate, hex
  std::string alpn;
  std::string version;  // "TLSv1.3"
  int status = 0;
  std::vector<StreamParser::Event> events;
  std::vector<std::string> datas() const;

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string request_;
  bool sent_ = false;
  ResponseReader response_;
  StreamParser parser_;
};

// CertificateFingerprint returns the SHA-256 of the first certificate in a
// PEM file, hex (as TlsClient::peer_fingerprint).
std::string CertificateFingerprint(const std::string& pem_file);

// TestCertificates writes tests/support/make_test_certs.sh's files into a
// fresh temporary directory, once per process, and returns it.
const std::string& TestCertificates();

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_TLS_CLIENT_H_
