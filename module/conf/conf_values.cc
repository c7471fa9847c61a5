// Value syntax of configuration files: sizes, durations, counts, booleans,
// addresses. Pure functions; messages quote the offending text.
#include <limits>

#include "evsse/conf.h"
#include "evsse/pubsub/address.h"

namespace evsse::conf {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Digits parses a run of digits; false on overflow.
bool Digits(std::string_view s, uint64_t* out) {
  uint64_t v = 0;
  for (char c : s) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool Multiply(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string Quote(std::string_view s) {
  std::string out = "\"";
  size_t n = std::min<size_t>(s.size(), 64);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > n) out += "...";
  return out + "\"";
}

Result<uint64_t> ParseSize(std::string_view text) {
  std::string_view digits = text;
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        unit = 1ull << 10;
        break;
      case 'm':
      case 'M':
        unit = 1ull << 20;
        break;
      case 'g':
      case 'G':
        unit = 1ull << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.remove_suffix(1);
  }
  uint64_t n, v;
  if (!AllDigits(digits))
    return InvalidArgumentError("invalid size " + Quote(text) +
                                " (use bytes or k, m, g: 64k)");
  if (!Digits(digits, &n) || !Multiply(n, unit, &v))
    return OutOfRangeError("size too large " + Quote(text));
  return v;
}

Result<Millis> ParseDuration(std::string_view text) {
  if (text == "0") return Millis(0);
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  std::string_view digits = text.substr(0, i), unit = text.substr(i);
  uint64_t scale = 0;
  if (unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = 1000;
  else if (unit == "m")
    scale = 60 * 1000;
  else if (unit == "h")
    scale = 3600 * 1000;
  else if (unit == "d")
    scale = 24 * 3600 * 1000;
  if (digits.empty() || scale == 0) {
    std::string hint = unit.empty() && !digits.empty()
                           ? " (add a unit: ms, s, m, h, d)"
                           : " (use ms, s, m, h, d: 500ms, 15s)";
    return InvalidArgumentError("invalid duration " + Quote(text) + hint);
  }
  uint64_t n, ms;
  if (!Digits(digits, &n) || !Multiply(n, scale, &ms) ||
      ms > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return OutOfRangeError("duration too large " + Quote(text));
  return Millis(static_cast<int64_t>(ms));
}

Result<uint64_t> ParseCount(std::string_view text) {
  uint64_t v;
  if (!AllDigits(text))
    return InvalidArgumentError("invalid number " + Quote(text));
  if (!Digits(text, &v))
    return OutOfRangeError("number too large " + Quote(text));
  return v;
}

Result<bool> ParseBool(std::string_view text) {
  if (text == "on") return true;
  if (text == "off") return false;
  return InvalidArgumentError("invalid value " + Quote(text) +
                              " (use on or off)");
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](const char* why) {
    return InvalidArgumentError("invalid address " + Quote(text) + " (" + why +
                                ")");
  };
  HostPort hp;
  size_t colon;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':')
      return bad("expected [IPv6]:PORT");
    hp.host = std::string(text.substr(1, close - 1));
    for (char c : hp.host)
      if (!(IsHostChar(c) || c == ':')) return bad("bad IPv6 address");
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected HOST:PORT");
    hp.host = std::string(text.substr(0, colon));
    for (char c : hp.host)
      if (!IsHostChar(c)) return bad("bad host; IPv6 goes in brackets");
  }
  if (hp.host.empty()) return bad("empty host");
  std::string_view port = text.substr(colon + 1);
  uint64_t p;
  if (!AllDigits(port) || port.size() > 5 || !Digits(port, &p) || p > 65535)
    return bad("port must be 0..65535");
  hp.port = static_cast<int>(p);
  return hp;
}

Status ValidateRedisAddress(std::string_view text) {
  return pubsub::ParseAddress(text).status();
}

std::string FormatSize(uint64_t bytes) {
  if (bytes == 0) return "0";
  if (bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + "g";
  if (bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + "m";
  if (bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + "k";
  return std::to_string(bytes);
}

std::string FormatDuration(Millis duration) {
  int64_t ms = duration.count();
  if (ms == 0) return "0";
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  for (const Unit& u : kUnits)
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.name;
  return std::to_string(ms) + "ms";
}

}  // namespace evsse::conf
