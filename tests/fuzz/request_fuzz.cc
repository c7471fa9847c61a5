// Fuzz target: subscribe request parsing (module/core/request.h): the query
// string, topic names and the Last-Event-ID header.
//
// Input: one flags byte, then the raw query; a NUL byte ends the query and
// what follows (up to the next NUL) is the Last-Event-ID header, present
// when flags bit 0 is set. The flags also pick max_topics and
// max_cursor_length. Properties:
//  - ParseQuery and PercentDecode agree with a reference decoder (result and
//    acceptance, the parameter limit included), and decoded parameters,
//    re-encoded, parse back to themselves;
//  - ParseSubscribe accepts exactly when the documented rules hold (topics
//    1..max, valid, unique; transport sse/poll/absent; the header winning
//    over lastEventId; a cursor that parses, with one position per topic and
//    not longer than the limit), and then returns those topics in order and
//    that cursor;
//  - error messages are printable ASCII (they go into 400 bodies and logs),
//    and EscapeForMessage output unescapes to the input's prefix.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "fuzz_check.h"
#include "request.h"

namespace {

using evsse::fuzz::IsPrintableAscii;
using evsse::internal::QueryParams;

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> RefDecode(std::string_view s, bool plus) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (s.size() - i < 3 || Hex(s[i + 1]) < 0 || Hex(s[i + 2]) < 0) {
        return std::nullopt;
      }
      out += static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2]));
      i += 2;
    } else {
      out += plus && s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::optional<QueryParams> RefQuery(std::string_view raw, size_t max) {
  QueryParams q;
  for (std::string_view part : evsse::fuzz::SplitOn(raw, '&')) {
    if (part.empty()) continue;
    if (q.size() == max) return std::nullopt;
    size_t eq = part.find('=');
    std::optional<std::string> k = RefDecode(part.substr(0, eq), true);
    std::optional<std::string> v = RefDecode(
        eq == std::string_view::npos ? "" : part.substr(eq + 1), true);
    if (!k || !v) return std::nullopt;
    q.emplace_back(*k, *v);
  }
  return q;
}

std::string Encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

bool TopicOk(std::string_view t, size_t max_len) {
  if (t.empty() || t.size() > max_len) return false;
  for (char c : t) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') ||
          std::string_view("-_.:@/").find(c) != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

std::optional<std::string_view> Find(const QueryParams& q, std::string_view k) {
  for (const auto& [key, value] : q) {
    if (key == k) return std::string_view(value);
  }
  return std::nullopt;
}

// RefSubscribe returns whether the request must be accepted, and fills
// `want` when so.
bool RefSubscribe(std::string_view raw, const char* header,
                  const evsse::internal::SubscribeLimits& limits,
                  evsse::internal::SubscribeRequest* want) {
  std::optional<QueryParams> q = RefQuery(raw, limits.max_topics + 64);
  if (!q) return false;
  std::unordered_set<std::string> seen;
  for (const auto& [key, value] : *q) {
    if (key != "topic") continue;
    if (want->topics.size() == limits.max_topics) return false;
    if (!TopicOk(value, limits.max_topic_length)) return false;
    if (!seen.insert(value).second) return false;
    want->topics.push_back(value);
  }
  if (want->topics.empty()) return false;
  std::optional<std::string_view> transport = Find(*q, "transport");
  if (transport && *transport != "sse" && *transport != "poll") return false;
  want->poll = transport && *transport == "poll";
  std::optional<std::string_view> id =
      header ? std::optional<std::string_view>(header)
             : Find(*q, "lastEventId");
  if (!id || id->empty()) return true;
  size_t max_len =
      limits.max_cursor_length != 0
          ? limits.max_cursor_length
          : limits.max_topics * (evsse::pubsub::kMaxPositionChars + 1);
  if (id->size() > max_len) return false;
  // The cursor grammar itself is cursor_fuzz's business.
  auto cursor = evsse::pubsub::ParseCursor(*id, limits.max_topics);
  if (!cursor.ok() || cursor->size() != want->topics.size()) return false;
  want->cursor = *cursor;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = bytes[0];
  std::string_view rest(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const std::string_view query = rest.substr(0, rest.find('\0'));
  std::string header_text;
  if (query.size() < rest.size()) {
    std::string_view after = rest.substr(query.size() + 1);
    header_text = std::string(after.substr(0, after.find('\0')));
  }
  const char* header = (flags & 1) ? header_text.c_str() : nullptr;

  // ParseQuery and PercentDecode.
  const size_t max_params = 1 + (flags >> 4);
  evsse::Result<QueryParams> params =
      evsse::internal::ParseQuery(query, max_params);
  std::optional<QueryParams> want_params = RefQuery(query, max_params);
  EVSSE_FUZZ_CHECK(params.ok() == want_params.has_value());
  if (params.ok()) {
    EVSSE_FUZZ_CHECK(*params == *want_params);
    std::string encoded;
    for (const auto& [k, v] : *params) {
      encoded += Encode(k) + "=" + Encode(v) + "&";
    }
    evsse::Result<QueryParams> again =
        evsse::internal::ParseQuery(encoded, max_params);
    // A part with an empty key and value ("=") is kept, so the count and
    // the values survive.
    EVSSE_FUZZ_CHECK(again.ok() && *again == *params);
  } else {
    EVSSE_FUZZ_CHECK(IsPrintableAscii(params.status().message()));
  }
  for (bool plus : {false, true}) {
    evsse::Result<std::string> d = evsse::internal::PercentDecode(query, plus);
    std::optional<std::string> want = RefDecode(query, plus);
    EVSSE_FUZZ_CHECK(d.ok() == want.has_value());
    EVSSE_FUZZ_CHECK(d.ok() ? *d == *want
                            : IsPrintableAscii(d.status().message()));
  }

  // ParseSubscribe.
  evsse::internal::SubscribeLimits limits;
  limits.max_topics = 1 + ((flags >> 1) & 7);
  limits.max_topic_length = 1 + ((flags >> 4) & 7) * 8;
  limits.max_cursor_length = (flags & 0x80) ? 0 : 40;
  evsse::Result<evsse::internal::SubscribeRequest> req =
      evsse::internal::ParseSubscribe(query, header, limits);
  evsse::internal::SubscribeRequest want;
  const bool accept = RefSubscribe(query, header, limits, &want);
  EVSSE_FUZZ_CHECK(req.ok() == accept);
  if (req.ok()) {
    EVSSE_FUZZ_CHECK(req->topics == want.topics);
    EVSSE_FUZZ_CHECK(req->poll == want.poll);
    EVSSE_FUZZ_CHECK(req->cursor == want.cursor);
    for (const std::string& t : req->topics) {
      EVSSE_FUZZ_CHECK(
          evsse::internal::ValidateTopic(t, limits.max_topic_length).ok());
    }
  } else {
    EVSSE_FUZZ_CHECK(!req.status().message().empty());
    EVSSE_FUZZ_CHECK(IsPrintableAscii(req.status().message()));
  }

  // ValidateTopic and EscapeForMessage on the raw query.
  evsse::Status topic = evsse::internal::ValidateTopic(query, 64);
  EVSSE_FUZZ_CHECK(topic.ok() == TopicOk(query, 64));
  EVSSE_FUZZ_CHECK(topic.ok() || IsPrintableAscii(topic.message()));
  const size_t max = flags % 80;
  const std::string escaped = evsse::internal::EscapeForMessage(query, max);
  EVSSE_FUZZ_CHECK(IsPrintableAscii(escaped));
  const bool cut = query.size() > max;
  std::string_view body(escaped);
  if (cut) {
    EVSSE_FUZZ_CHECK(body.size() >= 3 && body.substr(body.size() - 3) == "...");
    body.remove_suffix(3);
  }
  std::string unescaped;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\\') {
      EVSSE_FUZZ_CHECK(i + 3 < body.size());
      EVSSE_FUZZ_CHECK(body[i + 1] == 'x');
      unescaped += static_cast<char>(Hex(body[i + 2]) * 16 + Hex(body[i + 3]));
      i += 3;
    } else {
      EVSSE_FUZZ_CHECK(body[i] != '"');
      unescaped += body[i];
    }
  }
  EVSSE_FUZZ_CHECK(unescaped == query.substr(0, cut ? max : query.size()));
  return 0;
}
