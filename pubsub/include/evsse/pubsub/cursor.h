// Event ids and cursors: the positions a client resumes from.
//
// Every event has a Position in its topic's history and an epoch naming that
// history (memory mode: chosen when the bus starts; Redis mode: created with
// the topic's stream). A client's cursor is the last delivered position of
// each topic it subscribes to, in subscription order. Ids are opaque to
// clients; their text form is:
//
//   cursor   := position ( "," position )*        one per subscribed topic
//   position := epoch "." value
//   epoch    := 1*13 ( DIGIT / %x61-7A )           base 36, lower case
//   value    := 1*20 DIGIT [ "-" 1*20 DIGIT ]      "seq" or Redis "ms-seq"
//
// e.g. "k3x9f.1042" or "k3x9f.1042,k3x9f.1038". Each number fits uint64; the
// epoch is a uint64 written in base 36 (at most 13 digits). A value without
// "-" has minor 0.
//
// Pure functions, no I/O; safe from any thread.
#ifndef EVSSE_PUBSUB_CURSOR_H_
#define EVSSE_PUBSUB_CURSOR_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/export.h"
#include "evsse/status.h"

namespace evsse::pubsub {

// Position orders events within one topic's history (and, in memory mode,
// across all topics of one bus).
struct Position {
  uint64_t major = 0;  // memory: bus sequence; Redis: stream id milliseconds
  uint64_t minor = 0;  // memory: 0; Redis: stream id sequence

  friend bool operator==(Position a, Position b) {
    return a.major == b.major && a.minor == b.minor;
  }
  friend bool operator!=(Position a, Position b) { return !(a == b); }
  friend bool operator<(Position a, Position b) {
    return a.major < b.major || (a.major == b.major && a.minor < b.minor);
  }
  friend bool operator>(Position a, Position b) { return b < a; }
  friend bool operator<=(Position a, Position b) { return !(b < a); }
  friend bool operator>=(Position a, Position b) { return !(a < b); }
};

// TopicCursor is one topic's part of a cursor.
struct TopicCursor {
  uint64_t epoch = 0;
  Position position;

  friend bool operator==(const TopicCursor& a, const TopicCursor& b) {
    return a.epoch == b.epoch && a.position == b.position;
  }
};

// kMaxPositionChars is the longest text form of one TopicCursor.
inline constexpr size_t kMaxPositionChars = 13 + 1 + 20 + 1 + 20;

// ParseCursor parses the text form above. It fails with kInvalidArgument
// and a message naming the problem (empty, bad character, number overflow,
// more than `max_positions` positions). Never crashes on any input.
EVSSE_API Result<std::vector<TopicCursor>> ParseCursor(std::string_view text,
                                                       size_t max_positions);

// AppendPosition appends the text form of one TopicCursor to `out`.
EVSSE_API void AppendPosition(std::string& out, const TopicCursor& c);

// FormatCursor returns the text form of a whole cursor ("," joined).
EVSSE_API std::string FormatCursor(const std::vector<TopicCursor>& cursor);

// AppendBase36 appends `v` in lower-case base 36 ("0" for zero).
EVSSE_API void AppendBase36(std::string& out, uint64_t v);

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_CURSOR_H_
