// Fuzz target: event ids and cursors (evsse/pubsub/cursor.h), the text a
// client sends back as Last-Event-ID.
//
// Input: the first byte picks max_positions (1..16), the rest is the cursor
// text. Properties:
//  - ParseCursor accepts exactly the grammar of cursor.h with every number
//    fitting 64 bits, checked against an independent matcher that computes
//    the values with 128-bit arithmetic, and at most max_positions parts;
//  - an accepted cursor formats to a canonical text that parses to the same
//    value, is a fixed point (format(parse(canonical)) == canonical) and is
//    no longer than the input;
//  - the input's bytes read as numbers format and parse back exactly;
//  - error messages are printable ASCII (they reach logs and 400 bodies).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "fuzz_check.h"

namespace {

using evsse::pubsub::FormatCursor;
using evsse::pubsub::ParseCursor;
using evsse::pubsub::TopicCursor;

constexpr unsigned __int128 kMax = std::numeric_limits<uint64_t>::max();

// Number reads base-`base` digits in [min_len, max_len]; false on anything
// else or on a value above 64 bits.
bool Number(std::string_view s, unsigned base, size_t max_len, uint64_t* out) {
  if (s.empty() || s.size() > max_len) return false;
  unsigned __int128 v = 0;
  for (char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (base == 36 && c >= 'a' && c <= 'z') {
      d = static_cast<unsigned>(c - 'a') + 10;
    } else {
      return false;
    }
    if (d >= base) return false;
    v = v * base + d;
    if (v > kMax) return false;
  }
  *out = static_cast<uint64_t>(v);
  return true;
}

// Reference matches `text` against the grammar, part by part.
bool Reference(std::string_view text, size_t max_positions,
               std::vector<TopicCursor>* out) {
  for (std::string_view part : evsse::fuzz::SplitOn(text, ',')) {
    if (out->size() == max_positions) return false;
    TopicCursor c;
    size_t dot = part.find('.');
    if (dot == std::string_view::npos) return false;
    std::string_view value = part.substr(dot + 1);
    size_t dash = value.find('-');
    if (!Number(part.substr(0, dot), 36, 13, &c.epoch) ||
        !Number(value.substr(0, dash), 10, 20, &c.position.major)) {
      return false;
    }
    if (dash != std::string_view::npos &&
        !Number(value.substr(dash + 1), 10, 20, &c.position.minor)) {
      return false;
    }
    out->push_back(c);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const size_t max_positions = 1 + bytes[0] % 16;
  const std::string_view text(reinterpret_cast<const char*>(bytes) + 1,
                              size - 1);

  evsse::Result<std::vector<TopicCursor>> parsed =
      ParseCursor(text, max_positions);
  std::vector<TopicCursor> want;
  const bool valid = Reference(text, max_positions, &want);
  EVSSE_FUZZ_CHECK(parsed.ok() == valid);
  if (!parsed.ok()) {
    EVSSE_FUZZ_CHECK(!parsed.status().message().empty());
    EVSSE_FUZZ_CHECK(evsse::fuzz::IsPrintableAscii(parsed.status().message()));
  } else {
    EVSSE_FUZZ_CHECK(*parsed == want);
    const std::string canonical = FormatCursor(*parsed);
    EVSSE_FUZZ_CHECK(canonical.size() <= text.size());
    evsse::Result<std::vector<TopicCursor>> again =
        ParseCursor(canonical, max_positions);
    EVSSE_FUZZ_CHECK(again.ok() && *again == *parsed);
    EVSSE_FUZZ_CHECK(FormatCursor(*again) == canonical);
  }

  // The bytes as numbers: epoch, major, minor (zero-padded at the end).
  std::vector<TopicCursor> cursor;
  for (size_t at = 0; at < size && cursor.size() < 16; at += 24) {
    uint64_t n[3] = {0, 0, 0};
    std::memcpy(n, bytes + at, std::min<size_t>(24, size - at));
    // Small values too, which the raw bytes rarely give.
    if (bytes[at] & 1) {
      for (uint64_t& v : n) v >>= (v & 63);
    }
    cursor.push_back({n[0], {n[1], n[2]}});
  }
  const std::string text2 = FormatCursor(cursor);
  EVSSE_FUZZ_CHECK(text2.size() <=
                   cursor.size() * (evsse::pubsub::kMaxPositionChars + 1));
  evsse::Result<std::vector<TopicCursor>> back =
      ParseCursor(text2, cursor.size());
  EVSSE_FUZZ_CHECK(back.ok() && *back == cursor);
  return 0;
}
