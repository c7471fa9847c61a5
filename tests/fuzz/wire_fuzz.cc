// Fuzz target: SSE framing (evsse/wire.h) against the client parser.
//
// Input: data 0xFF type 0xFF id 0xFF comment (missing parts are empty; 0xFF
// never occurs in UTF-8). Properties:
//  - EncodeEvent accepts exactly what the three Validate* functions accept,
//    and IsValidUtf8 agrees with an independent decoder;
//  - an accepted event, encoded after a retry line and a comment, and parsed
//    back by StreamParser (whole, and cut at an input-derived point) gives
//    exactly one event: the type ("message" when empty), the data with CRLF
//    and lone CR turned into LF, the id; plus the retry value and the
//    comment's lines;
//  - DecodeEventBody reverses AppendEventBody;
//  - validation messages are printable ASCII (they reach publishers' logs).
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/stream_parser.h"
#include "evsse/wire.h"
#include "fuzz_check.h"

namespace {

using evsse::fuzz::Hash;
using evsse::fuzz::IsPrintableAscii;
using evsse::fuzz::SplitOn;

// ReferenceUtf8 decodes code point by code point (RFC 3629): the sequence
// length from the lead byte, continuation bytes, then the value must be in
// the range of its length, not a surrogate, at most U+10FFFF.
bool ReferenceUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80         ? 1
              : (c >> 5) == 6  ? 2
              : (c >> 4) == 14 ? 3
              : (c >> 3) == 30 ? 4
                               : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Lines splits on CRLF, lone CR and lone LF; a trailing line end gives a
// final empty line (what the encoder writes).
std::vector<std::string> Lines(std::string_view s) {
  std::vector<std::string> lines(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      lines.emplace_back();
    } else {
      lines.back() += s[i];
    }
  }
  return lines;
}

std::string Normalize(std::string_view s) {
  std::string out;
  for (const std::string& line : Lines(s)) out += line + '\n';
  out.pop_back();  // Lines gives at least one line
  return out;
}

struct Parsed {
  std::vector<evsse::StreamParser::Event> events;
  std::vector<std::string> comments;
  std::vector<uint64_t> retries;
  std::string last_event_id;
};

Parsed Parse(std::string_view stream, size_t cut) {
  Parsed p;
  evsse::StreamParser parser;
  parser.on_event = [&p](const evsse::StreamParser::Event& e) {
    p.events.push_back(e);
  };
  parser.on_comment = [&p](std::string_view c) { p.comments.emplace_back(c); };
  parser.on_retry = [&p](uint64_t ms) { p.retries.push_back(ms); };
  EVSSE_FUZZ_CHECK(parser.Feed(stream.substr(0, cut)).ok());
  EVSSE_FUZZ_CHECK(parser.Feed(stream.substr(cut)).ok());
  p.last_event_id = parser.last_event_id();
  parser.Finish();
  return p;
}

bool SameEvents(const Parsed& a, const Parsed& b) {
  if (a.events.size() != b.events.size()) return false;
  for (size_t i = 0; i < a.events.size(); ++i) {
    if (a.events[i].type != b.events[i].type ||
        a.events[i].data != b.events[i].data ||
        a.events[i].last_event_id != b.events[i].last_event_id) {
      return false;
    }
  }
  return a.comments == b.comments && a.retries == b.retries &&
         a.last_event_id == b.last_event_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(bytes), size);
  std::vector<std::string_view> parts = SplitOn(in, '\xFF');
  parts.resize(4);
  const std::string_view data = parts[0], type = parts[1], id = parts[2],
                         comment = parts[3];

  for (std::string_view part : {data, type, id, comment}) {
    EVSSE_FUZZ_CHECK(evsse::IsValidUtf8(part) == ReferenceUtf8(part));
  }
  const evsse::Status type_ok = evsse::ValidateEventType(type);
  const evsse::Status id_ok = evsse::ValidateEventId(id);
  const evsse::Status data_ok =
      evsse::ValidateEventData(data, std::numeric_limits<size_t>::max());
  for (const evsse::Status* s : {&type_ok, &id_ok, &data_ok}) {
    EVSSE_FUZZ_CHECK(s->ok() || IsPrintableAscii(s->message()));
  }
  auto no_breaks = [](std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) ==
           std::string_view::npos;
  };
  EVSSE_FUZZ_CHECK(type_ok.ok() == (ReferenceUtf8(type) && no_breaks(type) &&
                                    type.size() <= 256));
  EVSSE_FUZZ_CHECK(id_ok.ok() ==
                   (ReferenceUtf8(id) && no_breaks(id) && id.size() <= 1024));
  EVSSE_FUZZ_CHECK(data_ok.ok() == ReferenceUtf8(data));

  evsse::Result<std::string> frame = evsse::EncodeEvent(type, data, id);
  EVSSE_FUZZ_CHECK(frame.ok() == (type_ok.ok() && id_ok.ok() && data_ok.ok()));
  if (!frame.ok()) return 0;

  // The body alone decodes back (the poll transport's path).
  std::string body;
  evsse::AppendEventBody(body, type, data);
  EVSSE_FUZZ_CHECK(frame->compare(0, body.size(), body) == 0);
  std::string decoded_type, decoded_data;
  evsse::DecodeEventBody(body, &decoded_type, &decoded_data);
  const std::string want_type = type.empty() ? "message" : std::string(type);
  const std::string want_data = Normalize(data);
  EVSSE_FUZZ_CHECK(decoded_type == want_type);
  EVSSE_FUZZ_CHECK(decoded_data == want_data);

  // retry + comment + event, parsed back whole and cut in two.
  const uint64_t retry = Hash(in);
  std::string stream;
  evsse::AppendRetry(stream, retry);
  const bool with_comment = ReferenceUtf8(comment);
  if (with_comment) evsse::AppendComment(stream, comment);
  stream += *frame;

  const Parsed whole = Parse(stream, stream.size());
  EVSSE_FUZZ_CHECK(whole.events.size() == 1);
  EVSSE_FUZZ_CHECK(whole.events[0].type == want_type);
  EVSSE_FUZZ_CHECK(whole.events[0].data == want_data);
  EVSSE_FUZZ_CHECK(whole.events[0].last_event_id == id);
  EVSSE_FUZZ_CHECK(whole.last_event_id == id);
  EVSSE_FUZZ_CHECK(whole.retries == std::vector<uint64_t>{retry});
  std::vector<std::string> want_comments;
  if (with_comment) {
    for (const std::string& line : Lines(comment)) {
      want_comments.push_back(line.empty() ? "" : " " + line);
    }
  }
  EVSSE_FUZZ_CHECK(whole.comments == want_comments);

  const Parsed cut = Parse(stream, (retry >> 7) % (stream.size() + 1));
  EVSSE_FUZZ_CHECK(SameEvents(whole, cut));
  return 0;
}
