// Fuzz target: the client's event-stream parser (evsse/stream_parser.h).
//
// Input: any bytes, read as a text/event-stream body. Properties:
//  - the parser agrees with a reference written straight from the WHATWG
//    text (split lines on CRLF/CR/LF, decode each with the Encoding
//    standard's UTF-8 decoder state machine, interpret fields), on events,
//    comments, retry values, the last event id and on whether and where a
//    line or data limit stops the stream;
//  - feeding the bytes in chunks cut at input-derived points, or one byte
//    at a time (inputs up to 512 bytes), gives the same result as feeding them
//    whole;
//  - every dispatched string is valid UTF-8, a type is never empty, an id
//    never holds NUL, CR or LF.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/stream_parser.h"
#include "evsse/wire.h"
#include "fuzz_check.h"

namespace {

using evsse::StreamParser;
using evsse::fuzz::Hash;

struct Outcome {
  std::vector<StreamParser::Event> events;
  std::vector<std::string> comments;
  std::vector<uint64_t> retries;
  std::string last_event_id;
  bool failed = false;

  bool operator==(const Outcome& o) const {
    if (events.size() != o.events.size()) return false;
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].type != o.events[i].type ||
          events[i].data != o.events[i].data ||
          events[i].last_event_id != o.events[i].last_event_id) {
        return false;
      }
    }
    return comments == o.comments && retries == o.retries &&
           last_event_id == o.last_event_id && failed == o.failed;
  }
};

// Run feeds `chunks` in order to a fresh parser.
Outcome Run(const std::vector<std::string_view>& chunks,
            StreamParser::Limits limits) {
  Outcome out;
  StreamParser parser(limits);
  parser.on_event = [&out](const StreamParser::Event& e) {
    out.events.push_back(e);
  };
  parser.on_comment = [&out](std::string_view c) {
    out.comments.emplace_back(c);
  };
  parser.on_retry = [&out](uint64_t ms) { out.retries.push_back(ms); };
  for (std::string_view chunk : chunks) {
    if (!parser.Feed(chunk).ok()) {
      out.failed = true;
      // Sticky: later calls fail the same way and do nothing.
      EVSSE_FUZZ_CHECK(!parser.Feed("data: x\n\n").ok());
      break;
    }
  }
  out.last_event_id = parser.last_event_id();
  parser.Finish();
  return out;
}

// DecodeUtf8 is the Encoding standard's "UTF-8 decoder", byte by byte, with
// replacement; the end of the line is the end of the queue.
std::string DecodeUtf8(std::string_view in) {
  static constexpr std::string_view kFffd = "\xEF\xBF\xBD";
  std::string out;
  int needed = 0, seen = 0;
  unsigned lower = 0x80, upper = 0xBF;
  size_t start = 0;
  size_t i = 0;
  while (i < in.size()) {
    unsigned b = static_cast<unsigned char>(in[i]);
    if (needed == 0) {
      start = i;
      ++i;
      if (b <= 0x7F) {
        out += static_cast<char>(b);
      } else if (b >= 0xC2 && b <= 0xDF) {
        needed = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0;
        if (b == 0xED) upper = 0x9F;
        needed = 2;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90;
        if (b == 0xF4) upper = 0x8F;
        needed = 3;
      } else {
        out += kFffd;
      }
      continue;
    }
    if (b < lower || b > upper) {
      needed = seen = 0;
      lower = 0x80;
      upper = 0xBF;
      out += kFffd;
      continue;  // b is processed again as a lead byte
    }
    lower = 0x80;
    upper = 0xBF;
    ++i;
    if (++seen == needed) {
      out.append(in.substr(start, i - start));
      needed = seen = 0;
    }
  }
  if (needed != 0) out += kFffd;
  return out;
}

// Reference interprets the stream as the WHATWG text says, with the
// parser's documented limits.
Outcome Reference(std::string_view in, StreamParser::Limits limits) {
  Outcome out;
  std::string data, type, id_buffer;
  std::string_view bom = "\xEF\xBB\xBF";
  bool first = true;
  size_t pos = 0;
  while (pos <= in.size()) {
    size_t end = in.find_first_of("\r\n", pos);
    std::string_view raw =
        in.substr(pos, end == std::string_view::npos ? std::string_view::npos
                                                     : end - pos);
    if (raw.size() > limits.max_line_bytes) {
      out.failed = true;
      break;
    }
    if (end == std::string_view::npos) break;  // unterminated: dropped
    pos = end + 1;
    if (in[end] == '\r' && pos < in.size() && in[pos] == '\n') ++pos;
    if (first && raw.substr(0, 3) == bom) raw.remove_prefix(3);
    first = false;
    const std::string line = DecodeUtf8(raw);
    if (line.empty()) {
      out.last_event_id = id_buffer;
      if (data.empty()) {
        type.clear();
        continue;
      }
      data.pop_back();
      out.events.push_back({type.empty() ? "message" : type, data, id_buffer});
      data.clear();
      type.clear();
      continue;
    }
    if (line[0] == ':') {
      out.comments.push_back(line.substr(1));
      continue;
    }
    size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    std::string value =
        colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (name == "data") {
      if (data.size() + value.size() + 1 > limits.max_data_bytes) {
        out.failed = true;
        break;
      }
      data += value + '\n';
    } else if (name == "event") {
      type = value;
    } else if (name == "id") {
      if (value.find('\0') == std::string::npos) id_buffer = value;
    } else if (name == "retry") {
      bool digits = !value.empty();
      unsigned __int128 ms = 0;
      for (char c : value) {
        digits = digits && c >= '0' && c <= '9';
        if (digits && ms <= std::numeric_limits<uint64_t>::max()) {
          ms = ms * 10 + static_cast<unsigned>(c - '0');
        }
      }
      if (digits && ms <= std::numeric_limits<uint64_t>::max()) {
        out.retries.push_back(static_cast<uint64_t>(ms));
      }
    }
  }
  return out;
}

void CheckWellFormed(const Outcome& o) {
  for (const StreamParser::Event& e : o.events) {
    EVSSE_FUZZ_CHECK(!e.type.empty());
    EVSSE_FUZZ_CHECK(evsse::IsValidUtf8(e.type) && evsse::IsValidUtf8(e.data));
    EVSSE_FUZZ_CHECK(evsse::IsValidUtf8(e.last_event_id));
    EVSSE_FUZZ_CHECK(e.last_event_id.find_first_of(
                         std::string_view("\0\r\n", 3)) == std::string::npos);
    EVSSE_FUZZ_CHECK(e.data.find('\r') == std::string::npos);
  }
  for (const std::string& c : o.comments) {
    EVSSE_FUZZ_CHECK(evsse::IsValidUtf8(c));
    EVSSE_FUZZ_CHECK(c.find_first_of("\r\n") == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(bytes), size);
  uint64_t h = Hash(in);

  // Default limits (no input reaches them), then small ones derived from
  // the input so that both limit errors are reached.
  const StreamParser::Limits big;
  StreamParser::Limits small;
  small.max_line_bytes = 1 + h % 48;
  small.max_data_bytes = 1 + (h >> 8) % 96;

  for (const StreamParser::Limits& limits : {big, small}) {
    const Outcome whole = Run({in}, limits);
    CheckWellFormed(whole);
    EVSSE_FUZZ_CHECK(whole == Reference(in, limits));

    // Up to 8 cuts at pseudo-random points (empty chunks included).
    std::vector<std::string_view> chunks;
    size_t pos = 0;
    for (int k = 0; k < 8 && pos < in.size(); ++k) {
      h = h * 6364136223846793005ULL + 1442695040888963407ULL;
      size_t len = (h >> 33) % (in.size() - pos + 1);
      chunks.push_back(in.substr(pos, len));
      pos += len;
    }
    chunks.push_back(in.substr(pos));
    EVSSE_FUZZ_CHECK(Run(chunks, limits) == whole);

    // Byte by byte costs a call per byte: short inputs only.
    if (in.size() <= 512) {
      std::vector<std::string_view> single;
      for (size_t i = 0; i < in.size(); ++i) single.push_back(in.substr(i, 1));
      EVSSE_FUZZ_CHECK(Run(single, limits) == whole);
    }
  }
  return 0;
}
