#include "evsse/pubsub/cursor.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace evsse::pubsub {
namespace {

constexpr size_t kMaxEpochChars = 13;
constexpr size_t kMaxDecimalDigits = 20;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

int Base36Digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return -1;
}

// Describe quotes one input byte for a message. The text comes from clients
// (a Last-Event-ID header), so control and non-ASCII bytes are escaped
// rather than copied into logs and 400 bodies.
std::string Describe(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  std::string s = "'";
  if (u >= 0x20 && u < 0x7f) {
    s += c;
  } else {
    static constexpr char kHex[] = "0123456789ABCDEF";
    s += "\\x";
    s += kHex[u >> 4];
    s += kHex[u & 0xf];
  }
  s += '\'';
  return s;
}

Status BadChar(std::string_view text, size_t at, std::string_view expected) {
  return InvalidArgumentError("bad character " + Describe(text[at]) +
                              " at byte " + std::to_string(at) + " (" +
                              std::string(expected) + ")");
}

Status Error(std::string_view what, size_t at) {
  return InvalidArgumentError(std::string(what) + " at byte " +
                              std::to_string(at));
}

// ParseDecimal reads 1..20 digits starting at `*i`, stopping at the end of
// the position or, when `stop_at_dash`, at a '-'. It reports `what` in
// messages.
Status ParseDecimal(std::string_view text, size_t* i, size_t end,
                    bool stop_at_dash, std::string_view what, uint64_t* out) {
  size_t begin = *i;
  uint64_t v = 0;
  for (; *i < end && !(stop_at_dash && text[*i] == '-'); ++*i) {
    char c = text[*i];
    if (c < '0' || c > '9') return BadChar(text, *i, "expected a digit");
    if (*i - begin == kMaxDecimalDigits) {
      return Error(std::string(what) + " is longer than 20 digits", begin);
    }
    unsigned d = static_cast<unsigned>(c - '0');
    if (v > (kMax - d) / 10) {
      return Error(std::string(what) + " overflows 64 bits", begin);
    }
    v = v * 10 + d;
  }
  if (*i == begin) return Error("empty " + std::string(what), begin);
  *out = v;
  return Status::Ok();
}

// ParsePosition parses text[begin, end), which holds no ','. Offsets in
// messages are relative to the whole cursor so that they point at the byte.
Status ParsePosition(std::string_view text, size_t begin, size_t end,
                     TopicCursor* out) {
  if (begin == end) return Error("empty position", begin);
  size_t i = begin;
  uint64_t epoch = 0;
  for (; i < end && text[i] != '.'; ++i) {
    int d = Base36Digit(text[i]);
    if (d < 0) {
      return BadChar(text, i, "epoch is lower-case base 36, then '.'");
    }
    if (i - begin == kMaxEpochChars) {
      return Error("epoch is longer than 13 characters", begin);
    }
    if (epoch > (kMax - static_cast<uint64_t>(d)) / 36) {
      return Error("epoch overflows 64 bits", begin);
    }
    epoch = epoch * 36 + static_cast<uint64_t>(d);
  }
  if (i == end) return Error("missing '.' after the epoch", begin);
  if (i == begin) return Error("empty epoch", begin);
  ++i;  // '.'

  Position p;
  Status s = ParseDecimal(text, &i, end, true, "value", &p.major);
  if (!s.ok()) return s;
  if (i < end) {
    ++i;  // '-'
    s = ParseDecimal(text, &i, end, false, "minor value", &p.minor);
    if (!s.ok()) return s;
  }
  out->epoch = epoch;
  out->position = p;
  return Status::Ok();
}

}  // namespace

Result<std::vector<TopicCursor>> ParseCursor(std::string_view text,
                                             size_t max_positions) {
  if (text.empty()) return InvalidArgumentError("empty cursor");
  // Bound the work before looking at any byte: a cursor can arrive in a
  // header of any size. Saturate so that a huge max_positions cannot wrap.
  constexpr size_t kSizeMax = std::numeric_limits<size_t>::max();
  size_t max_len = max_positions > kSizeMax / (kMaxPositionChars + 1)
                       ? kSizeMax
                       : max_positions * (kMaxPositionChars + 1);
  if (text.size() > max_len) {
    return InvalidArgumentError("cursor is " + std::to_string(text.size()) +
                                " bytes, longer than the limit of " +
                                std::to_string(max_len));
  }

  std::vector<TopicCursor> cursor;
  size_t begin = 0;
  while (true) {
    size_t comma = text.find(',', begin);
    size_t end = comma == std::string_view::npos ? text.size() : comma;
    if (cursor.size() == max_positions) {
      return InvalidArgumentError("cursor has more than " +
                                  std::to_string(max_positions) + " positions");
    }
    TopicCursor c;
    Status s = ParsePosition(text, begin, end, &c);
    if (!s.ok()) return s;
    cursor.push_back(c);
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return cursor;
}

void AppendBase36(std::string& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  char buf[kMaxEpochChars];
  size_t n = 0;
  do {
    buf[n++] = kDigits[v % 36];
    v /= 36;
  } while (v != 0);
  while (n > 0) out += buf[--n];
}

void AppendPosition(std::string& out, const TopicCursor& c) {
  char buf[kMaxDecimalDigits];
  auto append_decimal = [&out, &buf](uint64_t v) {
    // to_chars cannot fail: 20 digits always fit.
    char* end = std::to_chars(buf, buf + sizeof(buf), v).ptr;
    out.append(buf, static_cast<size_t>(end - buf));
  };
  AppendBase36(out, c.epoch);
  out += '.';
  append_decimal(c.position.major);
  // Memory-mode ids carry minor 0; leaving out "-0" keeps them short.
  if (c.position.minor != 0) {
    out += '-';
    append_decimal(c.position.minor);
  }
}

std::string FormatCursor(const std::vector<TopicCursor>& cursor) {
  std::string out;
  out.reserve(cursor.size() * (kMaxPositionChars + 1));
  for (size_t i = 0; i < cursor.size(); ++i) {
    if (i > 0) out += ',';
    AppendPosition(out, cursor[i]);
  }
  return out;
}

}  // namespace evsse::pubsub
