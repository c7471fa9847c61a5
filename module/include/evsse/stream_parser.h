// evsse::StreamParser: an incremental parser for text/event-stream bodies,
// following the WHATWG HTML "interpret an event stream" rules exactly.
//
// It does no I/O: feed it bytes as they arrive, in chunks of any size (a
// chunk may end in the middle of a line, of a CRLF pair or of a UTF-8
// sequence), and it calls back for each dispatched event. Part of the
// evsse::client target; the server's tests use it to read what they receive.
//
// Rules implemented (WHATWG):
//  - the stream is decoded as UTF-8; invalid sequences become U+FFFD (one per
//    maximal invalid subpart, as the WHATWG/Encoding "UTF-8 decode" does);
//  - one leading U+FEFF (BOM) at the very start of the stream is dropped;
//  - lines end with CRLF, LF or CR (a CR at the end of one chunk followed by
//    LF at the start of the next is one line end);
//  - a line starting with ':' is a comment;
//  - "name:value" (one leading space of value stripped) or "name" alone
//    (value empty); fields: event, data, id, retry; others ignored;
//  - data lines are joined with LF; an event is dispatched on a blank line
//    only; an empty data buffer dispatches nothing; the trailing LF is
//    removed; the event type is reset after each dispatch (and after a blank
//    line that dispatched nothing);
//  - `id` sets the last event id (it persists across events) unless its value
//    contains NUL, in which case the field is ignored; as in the spec it
//    takes effect at the next blank line (dispatch);
//  - `retry` is honoured only when its value is ASCII digits only (at least
//    one digit, and the number must fit in uint64_t);
//  - at end of stream (Finish) an unterminated line and event are dropped.
//
// Thread safety: none; one parser per stream, used from one thread.
#ifndef EVSSE_STREAM_PARSER_H_
#define EVSSE_STREAM_PARSER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "evsse/export.h"
#include "evsse/status.h"

namespace evsse {

class EVSSE_API StreamParser {
 public:
  struct Event {
    std::string type;  // "message" when the stream gave no event type
    std::string data;
    std::string last_event_id;  // the last event id at dispatch time
  };

  struct Limits {
    // The longest line and the largest data buffer accepted; past either,
    // Feed returns kResourceExhausted and the parser stops (a hostile or
    // broken server must not exhaust the client's memory). A line is
    // measured in bytes as received, without its line end and before UTF-8
    // repair; the data buffer counts the LF appended after each data line.
    size_t max_line_bytes = 16 << 20;
    size_t max_data_bytes = 16 << 20;
  };

  StreamParser() = default;
  explicit StreamParser(Limits limits) : limits_(limits) {}

  // Callbacks; any may be empty. They run inside Feed. A callback may not
  // call Feed or Finish on the same parser. The Event and the comment are
  // valid only during the call (the parser reuses their storage).
  std::function<void(const Event&)> on_event;
  std::function<void(std::string_view comment)> on_comment;  // after ':'
  std::function<void(uint64_t ms)> on_retry;

  // Feed consumes the next chunk of the stream. After an error, further
  // calls return the same error and do nothing until Finish.
  Status Feed(std::string_view chunk);

  // Finish marks the end of the stream: a pending partial line is dropped
  // unprocessed (per spec an unterminated line is not a line) and the pending
  // event is discarded; nothing is dispatched. The parser may be reused
  // afterwards for a new connection: the last event id and retry persist (as
  // an EventSource keeps them across reconnects), everything else is reset
  // (including the BOM check and a sticky error).
  void Finish();

  // last_event_id returns the last event id as of the last blank line (what
  // an EventSource sends as Last-Event-ID when it reconnects).
  const std::string& last_event_id() const { return last_event_id_; }
  // retry returns the last valid retry value seen, if any.
  std::optional<uint64_t> retry() const { return retry_; }

 private:
  Status LineTooLong();
  void ProcessLine(std::string_view raw);
  void ProcessField(std::string_view name, std::string_view value);
  void Dispatch();
  std::string_view DecodeUtf8(std::string_view raw);

  Limits limits_;
  Status error_;
  bool at_stream_start_ = true;  // BOM check still to do
  bool last_was_cr_ = false;     // the previous chunk ended with CR
  // The current, unfinished line as raw bytes. Lines are split before UTF-8
  // decoding (CR and LF never occur inside a multi-byte sequence), so a
  // sequence split across chunks is simply completed here.
  std::string line_;
  std::string decoded_;        // scratch: a line with invalid UTF-8 repaired
  std::string data_;           // the spec's data buffer
  std::string type_;           // the spec's event type buffer
  std::string id_buffer_;      // the spec's last event ID buffer
  std::string last_event_id_;  // the event source's last event ID string
  std::optional<uint64_t> retry_;
  Event event_;  // reused by every dispatch to avoid allocations
};

}  // namespace evsse

#endif  // EVSSE_STREAM_PARSER_H_
