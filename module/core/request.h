// Request parsing for the subscribe and publish endpoints: query strings,
// topic names, cursors. Pure functions, no I/O; safe from any thread.
#ifndef EVSSE_SRC_REQUEST_H_
#define EVSSE_SRC_REQUEST_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evsse/pubsub/cursor.h"
#include "evsse/status.h"

namespace evsse::internal {

// QueryParams is the decoded query string, in order, duplicates kept.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// ParseQuery splits a raw query string ("a=1&b=x%20y", without the '?') on
// '&' and the first '=' of each part, and percent-decodes keys and values
// ('+' is a space). Empty parts ("a=1&&b=2") are skipped; a part without '='
// has an empty value. A bad escape ("%G1", "%4") is kInvalidArgument.
// At most `max_params` parts (kInvalidArgument beyond).
Result<QueryParams> ParseQuery(std::string_view raw, size_t max_params = 256);

// PercentDecode decodes %XX escapes and '+' (when `plus_is_space`).
Result<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// FindParam returns the first value for `key`, if any.
std::optional<std::string_view> FindParam(const QueryParams& q,
                                          std::string_view key);

// ValidateTopic checks a topic name: 1..max_len bytes from
// [A-Za-z0-9] and "-_.:@/". Braces, spaces, commas, '%' and control or
// non-ASCII bytes are refused so that a topic is safe in a Redis key hash tag
// and in logs. The message quotes the name (escaped, truncated).
Status ValidateTopic(std::string_view topic, size_t max_len);

struct SubscribeLimits {
  size_t max_topics = 8;          // topics on one connection
  size_t max_topic_length = 128;  // bytes per topic name
  size_t max_cursor_length = 0;   // 0: derived from max_topics
  // False when a backend expands topics (Backend::Expand): the cursor's
  // position count is checked against the expanded topics afterwards.
  bool check_cursor_count = true;
};

struct SubscribeRequest {
  std::vector<std::string> topics;  // in request order, no duplicates
  // The resume cursor, one entry per topic, when one was given.
  std::optional<std::vector<pubsub::TopicCursor>> cursor;
  bool poll = false;  // transport=poll
  // Requested topics the store serves by others (Backend::Expand); set
  // once expanded.
  std::vector<std::string> expanded;
};

// ParseSubscribe builds a SubscribeRequest from the raw query and the
// Last-Event-ID header (nullptr when absent). Topics come from every `topic`
// parameter. The header wins over the `lastEventId` query parameter (a
// browser reconnecting sends the newer id in the header while the URL still
// carries the first one); an empty id means "no cursor". Errors, each a
// kInvalidArgument with a message fit for a 400 body:
//  - no topic, too many topics, a duplicate topic, a bad topic name;
//  - a cursor that does not parse, or whose position count differs from the
//    topic count (unless limits.check_cursor_count is false);
//  - `transport` other than "sse"/"poll".
Result<SubscribeRequest> ParseSubscribe(std::string_view raw_query,
                                        const char* last_event_id,
                                        const SubscribeLimits& limits);

// EscapeForMessage renders untrusted bytes for an error message or a log:
// printable ASCII kept except '"' and '\\', everything else as \xNN, cut at
// `max` bytes with
// "..." appended.
std::string EscapeForMessage(std::string_view s, size_t max = 64);

}  // namespace evsse::internal

#endif  // EVSSE_SRC_REQUEST_H_
