#include "tls_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace evsse::testing {
namespace {

std::string Reason() {
  unsigned long e = 0, last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (last == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string hex;
  char b[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

}  // namespace

TlsClient::TlsClient(int port, std::string request, const TlsClientOptions& o)
    : request_(std::move(request)) {
  parser_.on_event = [this](const StreamParser::Event& e) {
    events.push_back(e);
  };
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!o.ca_file.empty()) {
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr),
              1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  }
  if (o.min_version) SSL_CTX_set_min_proto_version(ctx_, o.min_version);
  if (o.max_version) SSL_CTX_set_max_proto_version(ctx_, o.max_version);
  if (!o.cert_file.empty()) {
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_, o.cert_file.c_str()), 1);
    EXPECT_EQ(
        SSL_CTX_use_PrivateKey_file(ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM),
        1);
  }
  // libevent 2.1's OpenSSL bufferevent closes the socket without a
  // close_notify (be_openssl_destruct never calls SSL_shutdown); HTTP frames
  // every body evsse sends, so an end of file is an end, as browsers, curl
  // and Node take it.
  SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof kAlpn - 1);
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  if (o.receive_buffer > 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &o.receive_buffer,
               sizeof o.receive_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A loopback connect completes from the listen backlog, before the
  // server's loop accepts.
  EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set_tlsext_host_name(ssl_, "localhost");
  SSL_set1_host(ssl_, "localhost");
}

TlsClient::~TlsClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
  if (fd_ >= 0) close(fd_);
}

void TlsClient::Poll() {
  if (failed || closed) return;
  if (!handshake_done) {
    ERR_clear_error();
    int r = SSL_connect(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      failed = true;
      error = Reason();
      return;
    }
    handshake_done = true;
    verify_result = SSL_get_verify_result(ssl_);
    if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
      peer_fingerprint = Fingerprint(peer);
      X509_free(peer);
    }
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    alpn.assign(reinterpret_cast<const char*>(p), n);
    version = SSL_get_version(ssl_);
  }
  if (!sent_) {
    ERR_clear_error();
    int r = SSL_write(ssl_, request_.data(), static_cast<int>(request_.size()));
    if (r <= 0) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      failed = true;
      error = Reason();
      return;
    }
    sent_ = true;
  }
  if (paused) return;
  char buf[16384];
  for (;;) {
    ERR_clear_error();
    int r = SSL_read(ssl_, buf, sizeof buf);
    if (r > 0) {
      response_.Append(buf, static_cast<size_t>(r));
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
      closed = true;
    } else {
      failed = true;
      error = Reason();
    }
    break;
  }
  response_.Consume(
      [this](std::string_view b) { EXPECT_TRUE(parser_.Feed(b).ok()); });
  status = response_.status();
  EXPECT_FALSE(response_.bad_chunk()) << "a chunk not followed by CRLF";
}

std::vector<std::string> TlsClient::datas() const {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

std::string CertificateFingerprint(const std::string& pem_file) {
  FILE* f = std::fopen(pem_file.c_str(), "r");
  if (!f) return "";
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!cert) return "";
  std::string fp = Fingerprint(cert);
  X509_free(cert);
  return fp;
}

const std::string& TestCertificates() {
  // Removed at exit with everything in it.
  struct Dir {
    std::string path;
    ~Dir() { std::filesystem::remove_all(path); }
  };
  static const Dir dir = [] {
    char tmpl[] = "/tmp/evsse-tls-test.XXXXXX";
    Dir d{mkdtemp(tmpl)};
    std::string cmd = std::string("bash '") + EVSSE_SOURCE_DIR +
                      "/tests/support/make_test_certs.sh' '" + d.path + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return d;
  }();
  return dir.path;
}

}  // namespace evsse::testing
