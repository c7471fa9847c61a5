#include "client_tls.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <vector>

namespace evsse::internal {
namespace {

// IsIpLiteral: "127.0.0.1" or "::1" (the URL's brackets already removed).
// Such a host gets no SNI (RFC 6066 forbids it) and is matched against the
// certificate's IP addresses, not its DNS names.
bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string NameText(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()),
                                                &BIO_free);
  if (!bio || !name) return "?";
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  return BioText(bio.get());
}

std::string TimeText(const ASN1_TIME* t) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()),
                                                &BIO_free);
  if (!bio || !t) return "?";
  ASN1_TIME_print(bio.get(), t);
  return BioText(bio.get());
}

// CertificateNames lists the names a certificate is valid for: its
// subjectAltName DNS and IP entries, else its subject.
std::string CertificateNames(X509* cert) {
  std::string out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    std::string one;
    if (n->type == GEN_DNS) {
      one = "DNS:" + std::string(reinterpret_cast<const char*>(
                                     ASN1_STRING_get0_data(n->d.dNSName)),
                                 ASN1_STRING_length(n->d.dNSName));
    } else if (n->type == GEN_IPADD) {
      int len = ASN1_STRING_length(n->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = "?";
      if (len == 4 || len == 16)
        inet_ntop(len == 4 ? AF_INET : AF_INET6,
                  ASN1_STRING_get0_data(n->d.iPAddress), text, sizeof text);
      one = std::string("IP:") + text;
    }
    if (one.empty()) continue;
    if (!out.empty()) out += ", ";
    out += one;
  }
  GENERAL_NAMES_free(names);
  return out.empty() ? NameText(X509_get_subject_name(cert)) : out;
}

// OnVerify runs for each certificate OpenSSL checks. Only the first
// failure is recorded (returning 0 stops the handshake there); the reason
// is OpenSSL's, with the certificate detail an operator needs to fix it.
int OnVerify(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok) return 1;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* record =
      ssl ? static_cast<TlsVerifyRecord*>(SSL_get_app_data(ssl)) : nullptr;
  if (!record || record->failed) return 0;
  const int err = X509_STORE_CTX_get_error(store);
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  std::string reason = X509_verify_cert_error_string(err);
  if (cert) {
    switch (err) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        reason += ": the certificate is for " + CertificateNames(cert) +
                  ", not " + record->host;
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        reason += " (not after " + TimeText(X509_get0_notAfter(cert)) + ")";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        reason += " (not before " + TimeText(X509_get0_notBefore(cert)) + ")";
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        reason += " (issuer " + NameText(X509_get_issuer_name(cert)) +
                  " is not a trusted CA)";
        break;
      default:
        reason += " (subject " + NameText(X509_get_subject_name(cert)) + ")";
    }
  }
  record->failed = true;
  record->reason = std::move(reason);
  return 0;
}

// OpenSslQueue empties this thread's OpenSSL error queue and returns the
// first (root) reason, e.g. "No such file or directory".
std::string OpenSslQueue() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    if (!out.empty()) continue;
    const char* r = ERR_reason_error_string(e);
    char buf[256];
    if (!r && ERR_SYSTEM_ERROR(e)) {
      r = std::strerror(ERR_GET_REASON(e));  // an errno (a missing file)
    } else if (!r) {
      ERR_error_string_n(e, buf, sizeof buf);
      r = buf;
    }
    out = r;
  }
  return out.empty() ? "unknown error" : out;
}

}  // namespace

struct ClientTls::Ctx {
  ~Ctx() {
    for (auto& [server, session] : sessions) SSL_SESSION_free(session);
    SSL_CTX_free(ctx);
  }
  SSL_CTX* ctx = nullptr;
  std::map<std::string, SSL_SESSION*> sessions;  // by host:port
};

ClientTls::~ClientTls() = default;

Result<std::unique_ptr<ClientTls>> ClientTls::Create(const ClientOptions& o) {
  std::unique_ptr<ClientTls> tls(new ClientTls());
  tls->ctx_ = std::make_unique<Ctx>();
  tls->insecure_ = o.insecure;
  ERR_clear_error();
  SSL_CTX* ctx = tls->ctx_->ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx)
    return InternalError("cannot create a TLS context: " + OpenSslQueue());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // An idle stream need not hold OpenSSL's read and write buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  // A server that closes without close_notify ends the stream as a plain
  // close does (libevent's allow_dirty_shutdown below only knows OpenSSL
  // 1.1's way of reporting it). Nothing is lost to a truncation: an
  // unterminated event is dropped, and the reconnect resumes after the
  // last complete one.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  static const unsigned char kAlpn[] = "\x08http/1.1";
  if (SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1) != 0)
    return InternalError("cannot set ALPN: " + OpenSslQueue());
  if (!o.ca_file.empty() || !o.ca_dir.empty()) {
    // Like curl --cacert: these replace the system store.
    if (SSL_CTX_load_verify_locations(
            ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
            o.ca_dir.empty() ? nullptr : o.ca_dir.c_str()) != 1) {
      std::string what = !o.ca_file.empty() ? "ca_file \"" + o.ca_file + "\""
                                            : "ca_dir \"" + o.ca_dir + "\"";
      if (!o.ca_file.empty() && !o.ca_dir.empty())
        what += " / ca_dir \"" + o.ca_dir + "\"";
      return InvalidArgumentError(what + ": cannot load: " + OpenSslQueue());
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return InternalError("cannot load the system's CA store: " +
                         OpenSslQueue());
  }
  if (o.client_cert_file.empty() != o.client_key_file.empty())
    return InvalidArgumentError(
        "client_cert_file and client_key_file go together");
  if (!o.client_cert_file.empty()) {
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, o.client_cert_file.c_str()) !=
        1)
      return InvalidArgumentError("client_cert_file \"" + o.client_cert_file +
                                  "\": cannot load: " + OpenSslQueue());
    if (SSL_CTX_use_PrivateKey_file(ctx, o.client_key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1)
      return InvalidArgumentError("client_key_file \"" + o.client_key_file +
                                  "\": cannot load: " + OpenSslQueue());
    if (SSL_CTX_check_private_key(ctx) != 1)
      return InvalidArgumentError("client_key_file \"" + o.client_key_file +
                                  "\" does not match client_cert_file \"" +
                                  o.client_cert_file + "\"");
  }
  SSL_CTX_set_verify(ctx, o.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     o.insecure ? nullptr : &OnVerify);
  ERR_clear_error();  // leave nothing for the loop thread's next caller
  return tls;
}

bufferevent* ClientTls::NewBufferevent(event_base* base,
                                       TlsVerifyRecord* record,
                                       const std::string& server) {
  SSL* ssl = SSL_new(ctx_->ctx);
  if (!ssl) return nullptr;
  auto it = ctx_->sessions.find(server);
  // A session the server refuses costs nothing: it is a full handshake.
  if (it != ctx_->sessions.end()) SSL_set_session(ssl, it->second);
  const std::string& host = record->host;
  bool ok = true;
  if (IsIpLiteral(host)) {
    if (!insecure_)
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    ok = SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
    if (ok && !insecure_) {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl, host.c_str()) == 1;
    }
  }
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_app_data(ssl, record);
  // The options evhttp itself gives a client connection's bufferevent.
  bufferevent* bev = bufferevent_openssl_socket_new(
      base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    SSL_free(ssl);
    return nullptr;
  }
  // A close without close_notify is an end of stream, not a TLS error.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

void ClientTls::Remember(bufferevent* bev, const std::string& server) {
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  SSL_SESSION* live = ssl ? SSL_get1_session(ssl) : nullptr;
  if (!live) return;
  // A copy: OpenSSL marks the connection's own session not resumable when
  // the connection ends without close_notify, as a dropped stream does.
  SSL_SESSION* session =
      SSL_SESSION_is_resumable(live) ? SSL_SESSION_dup(live) : nullptr;
  SSL_SESSION_free(live);
  if (!session) return;
  SSL_SESSION*& slot = ctx_->sessions[server];
  if (slot) SSL_SESSION_free(slot);
  slot = session;
}

void ClientTls::Detach(bufferevent* bev) {
  if (SSL* ssl = bev ? bufferevent_openssl_get_ssl(bev) : nullptr)
    SSL_set_app_data(ssl, nullptr);
}

std::string ClientTls::TakeErrors(bufferevent* bev) {
  std::vector<std::string> reasons;
  while (unsigned long e = bufferevent_get_openssl_error(bev)) {
    // libevent also queues SSL_get_error's small codes (a dirty close is
    // SSL_ERROR_SYSCALL): the caller words a plain close itself.
    if (ERR_GET_LIB(e) == 0) continue;
    const char* r = ERR_reason_error_string(e);
    char buf[256];
    if (!r) {
      ERR_error_string_n(e, buf, sizeof buf);
      r = buf;
    }
    bool seen = false;
    for (auto& s : reasons) seen = seen || s == r;
    if (!seen) reasons.insert(reasons.begin(), r);  // popped newest first
  }
  std::string out;
  for (auto& r : reasons) out += (out.empty() ? "" : "; ") + r;
  return out;
}

}  // namespace evsse::internal
