// evsse::TlsOptions: TLS on a server (both adapters take the same struct).
//
// evsse::evhttp::ServeTls and evsse::evhtp::ServeTls load it into an OpenSSL
// context (ALPN "http/1.1", buffers released while a connection is idle) and
// serve every connection the server accepts from then on over TLS. Calling
// ServeTls again reloads: connections accepted afterwards get the new
// certificate, open ones keep theirs; a file that does not load is an error
// and changes nothing.
//
// Thread safety: a value; copied by ServeTls.
#ifndef EVSSE_TLS_H_
#define EVSSE_TLS_H_

#include <string>
#include <string_view>

#include "evsse/export.h"
#include "evsse/status.h"

namespace evsse {

enum class TlsVersion { kTls12, kTls13 };

struct TlsOptions {
  // PEM files. certificate_file holds the leaf first, then the
  // intermediates (nginx's ssl_certificate); key_file its private key.
  std::string certificate_file;
  std::string key_file;
  // Versions offered; below TLS 1.2 is not supported.
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
  // TLS 1.2 cipher list in OpenSSL's syntax (TLS 1.3 suites are OpenSSL's
  // defaults, all AEAD): forward secret AEAD ciphers only.
  std::string ciphers =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  // Key-exchange groups, in order of preference.
  std::string curves = "X25519:P-256:P-384";
  // Mutual TLS: when set, every client must present a certificate that
  // chains to one of the CAs in this PEM file, or the handshake fails.
  std::string client_ca_file;
};

// Validate checks the fields that need no file: both files named, versions
// in order. Loading (ServeTls) reports what is wrong inside the files.
EVSSE_API Status Validate(const TlsOptions& options);

// TlsVersionName returns "TLSv1.2" or "TLSv1.3" (OpenSSL's and nginx's
// spelling); ParseTlsVersion reads it back, and refuses older versions by
// name ("TLSv1", "TLSv1.1", "SSLv3": not supported).
EVSSE_API const char* TlsVersionName(TlsVersion version);
EVSSE_API Result<TlsVersion> ParseTlsVersion(std::string_view name);

}  // namespace evsse

#endif  // EVSSE_TLS_H_
