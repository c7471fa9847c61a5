// TlsOptions' checks and version names: pure, so that the configuration
// language can use them without linking OpenSSL (module/tls loads them).
#include "evsse/tls.h"

namespace evsse {

Status Validate(const TlsOptions& options) {
  if (options.certificate_file.empty())
    return InvalidArgumentError("TLS: no certificate file");
  if (options.key_file.empty()) return InvalidArgumentError("TLS: no key file");
  if (options.min_version > options.max_version)
    return InvalidArgumentError(
        std::string("TLS: min_version ") + TlsVersionName(options.min_version) +
        " is above max_version " + TlsVersionName(options.max_version));
  if (options.ciphers.empty()) return InvalidArgumentError("TLS: no ciphers");
  if (options.curves.empty()) return InvalidArgumentError("TLS: no curves");
  return Status::Ok();
}

const char* TlsVersionName(TlsVersion version) {
  return version == TlsVersion::kTls12 ? "TLSv1.2" : "TLSv1.3";
}

Result<TlsVersion> ParseTlsVersion(std::string_view name) {
  if (name == "TLSv1.2") return TlsVersion::kTls12;
  if (name == "TLSv1.3") return TlsVersion::kTls13;
  if (name == "SSLv2" || name == "SSLv3" || name == "TLSv1" ||
      name == "TLSv1.1")
    return InvalidArgumentError(std::string(name) +
                                " is not supported (TLSv1.2 or TLSv1.3)");
  return InvalidArgumentError("unknown TLS version \"" + std::string(name) +
                              "\" (TLSv1.2 or TLSv1.3)");
}

}  // namespace evsse
