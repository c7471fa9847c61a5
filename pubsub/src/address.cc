#include "evsse/pubsub/address.h"

#include <sys/un.h>

#include <string>

namespace evsse::pubsub {
namespace {

Status Bad(std::string_view text, const std::string& why) {
  return InvalidArgumentError("redis address \"" + std::string(text) +
                              "\": " + why);
}

bool HostChar(char c, bool v6) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return true;
  if (v6) return c == ':' || c == '.' || c == '%';
  return c == '.' || c == '-' || c == '_';
}

}  // namespace

Result<Address> ParseAddress(std::string_view text) {
  Address a;
  a.text = std::string(text);
  if (text.empty()) {
    return Bad(text, "empty (expected host:port or unix:/path)");
  }
  if (text.compare(0, 5, "unix:") == 0) {
    a.is_unix = true;
    a.path = std::string(text.substr(5));
    if (a.path.empty()) return Bad(text, "no socket path after \"unix:\"");
    // A relative path would depend on the directory the server starts in.
    if (a.path[0] != '/') {
      return Bad(text, "unix: needs an absolute path");
    }
    if (a.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return Bad(text, "socket path longer than " +
                           std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                           " bytes");
    }
    if (a.path.find('\0') != std::string::npos) {
      return Bad(text, "NUL byte in the socket path");
    }
    return a;
  }
  std::string port;
  bool v6 = text[0] == '[';
  if (v6) {
    size_t close = text.find(']');
    if (close == std::string::npos) return Bad(text, "no ']' after \"[\"");
    a.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Bad(text, "no port (expected [v6-address]:port)");
    }
    port = std::string(text.substr(close + 2));
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Bad(text, "no port (expected host:port or unix:/path)");
    }
    a.host = std::string(text.substr(0, colon));
    port = std::string(text.substr(colon + 1));
    if (a.host.find(':') != std::string::npos) {
      return Bad(text, "an IPv6 address needs brackets: [v6-address]:port");
    }
  }
  if (a.host.empty()) return Bad(text, "no host before the port");
  for (char c : a.host) {
    if (!HostChar(c, v6)) {
      std::string shown = c >= 0x20 && c < 0x7f ? std::string(1, c) : "?";
      return Bad(text, "bad character '" + shown + "' in the host");
    }
  }
  if (port.empty()) return Bad(text, "empty port");
  long value = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      return Bad(text, "port \"" + port + "\" is not a number");
    value = value * 10 + (c - '0');
    if (value > 65535) break;
  }
  if (value < 1 || value > 65535) {
    return Bad(text, "port " + port + " out of range (1-65535)");
  }
  a.port = static_cast<int>(value);
  return a;
}

Result<SentinelSpec> ParseSentinelSpec(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("sentinel \"" + std::string(text) +
                                "\": " + why +
                                " (expected NAME@HOST:PORT[,HOST:PORT...])");
  };
  size_t at = text.find('@');
  if (at == std::string_view::npos) return bad("no '@' after the master name");
  SentinelSpec spec;
  spec.master = std::string(text.substr(0, at));
  if (spec.master.empty()) return bad("empty master name");
  if (spec.master.find_first_of(" \t\r\n\"'") != std::string::npos)
    return bad("spaces or quotes in the master name");
  std::string_view rest = text.substr(at + 1);
  if (rest.empty()) return bad("no sentinel after '@'");
  while (true) {
    size_t comma = rest.find(',');
    std::string_view one = rest.substr(0, comma);
    Result<Address> a = ParseAddress(one);
    if (!a.ok()) return bad(a.status().message());
    if (a->is_unix) return bad("sentinels are HOST:PORT, not unix sockets");
    for (const std::string& s : spec.sentinels)
      if (s == one) return bad("sentinel " + s + " listed twice");
    spec.sentinels.emplace_back(one);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return spec;
}

Result<std::vector<std::string>> ParseClusterSeeds(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("cluster \"" + std::string(text) + "\": " +
                                why + " (expected HOST:PORT[,HOST:PORT...])");
  };
  std::vector<std::string> seeds;
  std::string_view rest = text;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view one = rest.substr(0, comma);
    Result<Address> a = ParseAddress(one);
    if (!a.ok()) return bad(a.status().message());
    if (a->is_unix) return bad("seeds are HOST:PORT, not unix sockets");
    for (const std::string& s : seeds)
      if (s == one) return bad("seed " + s + " listed twice");
    seeds.emplace_back(one);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return seeds;
}

}  // namespace evsse::pubsub
