// SSE wire encoding (WHATWG HTML, "Server-sent events").
//
// Pure functions over bytes, no I/O; safe from any thread. The Hub uses them
// to encode each published event once; they are public so that applications
// can build frames (tests, custom transports) with the same rules.
//
// Rules:
//  - `data` may contain CR, LF or CRLF: each line becomes its own "data: "
//    line, so the client rebuilds the text with LF line ends. A data of ""
//    still produces one "data: " line (the event is dispatched with "").
//  - `event` (the type) and `id` must not contain CR, LF or NUL: they are
//    rejected with kInvalidArgument, never written to a stream. An empty
//    type omits the "event:" line (the client then sees "message").
//  - All text must be valid UTF-8 (rejected otherwise): the stream is
//    decoded as UTF-8 by clients, and invalid bytes would be replaced.
#ifndef EVSSE_WIRE_H_
#define EVSSE_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/export.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/status.h"

namespace evsse {

// IsValidUtf8 reports whether `s` is well-formed UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF).
EVSSE_API bool IsValidUtf8(std::string_view s);

// ValidateEventType checks an event type: UTF-8, no CR, LF or NUL, at most
// `max_len` bytes. The message names the offending byte offset.
EVSSE_API Status ValidateEventType(std::string_view type, size_t max_len = 256);

// ValidateEventId checks an id: UTF-8, no CR, LF or NUL, at most `max_len`.
EVSSE_API Status ValidateEventId(std::string_view id, size_t max_len = 1024);

// ValidateEventData checks data: UTF-8, at most `max_len` bytes. CR and LF
// are allowed (they split lines); NUL is allowed.
EVSSE_API Status ValidateEventData(std::string_view data, size_t max_len);

// AppendEventBody appends the "event:" line (when `type` is not empty) and
// the "data:" lines, without the id line and without the blank line that
// ends the event. Inputs must have been validated.
EVSSE_API void AppendEventBody(std::string& out, std::string_view type,
                               std::string_view data);

// AppendIdAndEnd appends "id: <id>\n\n" (or just "\n" when `id` is empty),
// ending an event begun with AppendEventBody.
EVSSE_API void AppendIdAndEnd(std::string& out, std::string_view id);
// The same with one topic's position as the id ("<epoch>.<position>").
EVSSE_API void AppendIdAndEnd(std::string& out, const pubsub::TopicCursor& id);
// AppendGapData appends the data of the gap event, the JSON object
// {"topics":[...],"reason":"expired"|"unknown"}: the topics whose history no
// longer reaches the client's cursor ("expired"), or whose cursor this
// history does not know ("unknown").
EVSSE_API void AppendGapData(std::string& out,
                             const std::vector<std::string>& topics,
                             bool unknown);

// AppendComment appends a comment. Each line of `text` (split on CR, LF,
// CRLF) becomes ": <line>\n"; an empty text gives ":\n" (a heartbeat).
EVSSE_API void AppendComment(std::string& out, std::string_view text);

// AppendRetry appends "retry: <ms>\n".
EVSSE_API void AppendRetry(std::string& out, uint64_t ms);

// DecodeEventBody reverses AppendEventBody on bytes it produced (the poll
// transport answers JSON from the stored frames): `type` gets the event type
// ("message" when absent), `data` the data lines joined with LF.
EVSSE_API void DecodeEventBody(std::string_view body, std::string* type,
                               std::string* data);

// EncodeEvent validates and encodes a whole event in one call.
EVSSE_API Result<std::string> EncodeEvent(std::string_view type,
                                          std::string_view data,
                                          std::string_view id);

}  // namespace evsse

#endif  // EVSSE_WIRE_H_
