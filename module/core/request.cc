#include "request.h"

#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace evsse::internal {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// Parameters besides `topic` that a subscribe URL may carry (lastEventId,
// transport, cache busters added by client libraries). The query limit is
// max_topics plus this, so that too many topics is reported as such.
constexpr size_t kMaxOtherParams = 64;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decode appends the decoding of `s` to `out`. On a bad escape it returns
// false and sets `*bad` to the offset of its '%'.
bool Decode(std::string_view s, bool plus_is_space, std::string* out,
            size_t* bad) {
  out->reserve(out->size() + s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      int hi = i + 1 < s.size() ? HexValue(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        *bad = i;
        return false;
      }
      *out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      *out += ' ';
    } else {
      *out += c;
    }
  }
  return true;
}

std::string Quote(std::string_view s) {
  return "\"" + EscapeForMessage(s) + "\"";
}

// BadEscape reports the escape starting `segment[at]`, found at byte
// `offset` of `whole`. The escape itself is shown because the quoted whole
// may be cut before it.
Status BadEscape(std::string_view whole, size_t offset,
                 std::string_view segment, size_t at) {
  return InvalidArgumentError("bad percent-encoding " +
                              Quote(segment.substr(at, 3)) + " at byte " +
                              std::to_string(offset) + " in " + Quote(whole));
}

bool IsTopicChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
         c == ':' || c == '@' || c == '/';
}

size_t SaturatingAdd(size_t a, size_t b) {
  return a > std::numeric_limits<size_t>::max() - b
             ? std::numeric_limits<size_t>::max()
             : a + b;
}

// ParseCursorParam parses a resume id from `source` ("Last-Event-ID" or
// "lastEventId") for `topic_count` topics.
Result<std::vector<pubsub::TopicCursor>> ParseCursorParam(
    std::string_view id, std::string_view source, size_t topic_count,
    const SubscribeLimits& limits) {
  std::string prefix = "bad " + std::string(source) + ": ";
  size_t max_len = limits.max_cursor_length;
  if (max_len == 0) {
    max_len = limits.max_topics > std::numeric_limits<size_t>::max() /
                                      (pubsub::kMaxPositionChars + 1)
                  ? std::numeric_limits<size_t>::max()
                  : limits.max_topics * (pubsub::kMaxPositionChars + 1);
  }
  if (id.size() > max_len) {
    return InvalidArgumentError(prefix + std::to_string(id.size()) +
                                " bytes, longer than the limit of " +
                                std::to_string(max_len) + " in " + Quote(id));
  }
  Result<std::vector<pubsub::TopicCursor>> cursor =
      pubsub::ParseCursor(id, limits.max_topics);
  if (!cursor.ok()) {
    return InvalidArgumentError(prefix + cursor.status().message() + " in " +
                                Quote(id));
  }
  if (limits.check_cursor_count && cursor->size() != topic_count) {
    return InvalidArgumentError(prefix + std::to_string(cursor->size()) +
                                " position" + (cursor->size() == 1 ? "" : "s") +
                                " for " + std::to_string(topic_count) +
                                " topic" + (topic_count == 1 ? "" : "s") +
                                " in " + Quote(id));
  }
  return cursor;
}

}  // namespace

Result<QueryParams> ParseQuery(std::string_view raw, size_t max_params) {
  QueryParams params;
  size_t begin = 0;
  while (begin <= raw.size()) {
    size_t amp = raw.find('&', begin);
    size_t end = amp == kNpos ? raw.size() : amp;
    std::string_view part = raw.substr(begin, end - begin);
    if (!part.empty()) {
      if (params.size() == max_params) {
        return InvalidArgumentError("more than " + std::to_string(max_params) +
                                    " query parameters");
      }
      size_t eq = part.find('=');
      std::string_view key = part.substr(0, eq);
      std::string_view value =
          eq == kNpos ? std::string_view() : part.substr(eq + 1);
      std::pair<std::string, std::string> kv;
      size_t bad = 0;
      if (!Decode(key, true, &kv.first, &bad)) {
        return BadEscape(part, bad, key, bad);
      }
      if (!Decode(value, true, &kv.second, &bad)) {
        return BadEscape(part, key.size() + 1 + bad, value, bad);
      }
      params.push_back(std::move(kv));
    }
    if (amp == kNpos) break;
    begin = amp + 1;
  }
  return params;
}

Result<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  size_t bad = 0;
  if (!Decode(s, plus_is_space, &out, &bad)) return BadEscape(s, bad, s, bad);
  return out;
}

std::optional<std::string_view> FindParam(const QueryParams& q,
                                          std::string_view key) {
  for (const auto& [k, v] : q) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

Status ValidateTopic(std::string_view topic, size_t max_len) {
  if (topic.empty()) return InvalidArgumentError("empty topic name");
  if (topic.size() > max_len) {
    return InvalidArgumentError(
        "topic name " + Quote(topic) + " is " + std::to_string(topic.size()) +
        " bytes, longer than the limit of " + std::to_string(max_len));
  }
  for (size_t i = 0; i < topic.size(); ++i) {
    if (!IsTopicChar(topic[i])) {
      return InvalidArgumentError("bad topic name " + Quote(topic) +
                                  ": character " + Quote(topic.substr(i, 1)) +
                                  " at byte " + std::to_string(i) +
                                  " is not one of A-Z a-z 0-9 - _ . : @ /");
    }
  }
  return Status::Ok();
}

Result<SubscribeRequest> ParseSubscribe(std::string_view raw_query,
                                        const char* last_event_id,
                                        const SubscribeLimits& limits) {
  // Counted on the raw query first: with thousands of topics the parameter
  // limit below would trip first and hide which limit was hit.
  size_t raw_topics = 0;
  for (size_t begin = 0; begin <= raw_query.size();) {
    size_t amp = raw_query.find('&', begin);
    std::string_view part =
        raw_query.substr(begin, amp == kNpos ? kNpos : amp - begin);
    if (part == "topic" || part.substr(0, 6) == "topic=") ++raw_topics;
    if (amp == kNpos) break;
    begin = amp + 1;
  }
  if (raw_topics > limits.max_topics) {
    return InvalidArgumentError("more than " +
                                std::to_string(limits.max_topics) + " topics");
  }
  Result<QueryParams> query =
      ParseQuery(raw_query, SaturatingAdd(limits.max_topics, kMaxOtherParams));
  if (!query.ok()) return query.status();

  SubscribeRequest req;
  // Views into `query`, which outlives the set; a hash set keeps duplicate
  // detection linear when a deployment allows many topics.
  std::unordered_set<std::string_view> seen;
  for (const auto& [key, value] : *query) {
    if (key != "topic") continue;
    if (req.topics.size() == limits.max_topics) {
      return InvalidArgumentError(
          "more than " + std::to_string(limits.max_topics) + " topics");
    }
    Status s = ValidateTopic(value, limits.max_topic_length);
    if (!s.ok()) return s;
    if (!seen.insert(value).second) {
      return InvalidArgumentError("duplicate topic " + Quote(value));
    }
    req.topics.push_back(value);
  }
  if (req.topics.empty()) {
    return InvalidArgumentError("missing topic parameter");
  }

  std::optional<std::string_view> transport = FindParam(*query, "transport");
  if (transport && *transport == "poll") {
    req.poll = true;
  } else if (transport && *transport != "sse") {
    return InvalidArgumentError("bad transport " + Quote(*transport) +
                                ": use sse or poll");
  }

  // A header that is present decides even when empty: it is the newer word
  // from the client, and "" is how it says "no cursor".
  std::optional<std::string_view> id;
  std::string_view source;
  if (last_event_id != nullptr) {
    id = last_event_id;
    source = "Last-Event-ID";
  } else {
    id = FindParam(*query, "lastEventId");
    source = "lastEventId";
  }
  if (id && !id->empty()) {
    Result<std::vector<pubsub::TopicCursor>> cursor =
        ParseCursorParam(*id, source, req.topics.size(), limits);
    if (!cursor.ok()) return cursor.status();
    req.cursor = std::move(cursor).value();
  }
  return req;
}

std::string EscapeForMessage(std::string_view s, size_t max) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  bool cut = s.size() > max;
  if (cut) s = s.substr(0, max);
  std::string out;
  out.reserve(s.size() + (cut ? 3 : 0));
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    // '"' and '\\' are escaped too, so a quoted value reads unambiguously.
    if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  if (cut) out += "...";
  return out;
}

}  // namespace evsse::internal
