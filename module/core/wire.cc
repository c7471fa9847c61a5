#include "evsse/wire.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace evsse {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// FindInvalidUtf8 returns the offset of the first byte that does not start a
// well-formed sequence (Unicode table 3-7), or kNpos. The narrowed second
// byte ranges are what exclude overlongs (E0, F0), surrogates (ED) and code
// points above U+10FFFF (F4); C0, C1 and F5..FF never start a sequence.
size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Event payloads are mostly ASCII (JSON); skip it eight bytes at a time.
    while (n - i >= 8) {
      uint64_t w;
      std::memcpy(&w, p + i, sizeof(w));
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i == n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3;
      lo = 0xA0;
    } else if (c == 0xED) {
      len = 3;
      hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF) {
      len = 3;
    } else if (c == 0xF0) {
      len = 4;
      lo = 0x90;
    } else if (c == 0xF4) {
      len = 4;
      hi = 0x8F;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return kNpos;
}

// ValidateLine checks a field written on one line (event type, id). It
// reports the earliest problem so that the offset in the message is the
// first byte the caller has to fix.
Status ValidateLine(std::string_view what, std::string_view s, size_t max_len) {
  if (s.size() > max_len) {
    return InvalidArgumentError(
        std::string(what) + " is " + std::to_string(s.size()) +
        " bytes, longer than the limit of " + std::to_string(max_len));
  }
  static constexpr std::string_view kBreaks("\r\n\0", 3);
  size_t bad = s.find_first_of(kBreaks);
  size_t end = bad == kNpos ? s.size() : bad;
  size_t utf8 = FindInvalidUtf8(s.substr(0, end));
  if (utf8 != kNpos) {
    return InvalidArgumentError(std::string(what) +
                                " is not valid UTF-8 at byte " +
                                std::to_string(utf8));
  }
  if (bad == kNpos) return Status::Ok();
  const char* name = s[bad] == '\r'   ? "a carriage return"
                     : s[bad] == '\n' ? "a line feed"
                                      : "a NUL byte";
  return InvalidArgumentError(std::string(what) + " contains " + name +
                              " at byte " + std::to_string(bad));
}

// Grow geometrically: a caller may append many events to one buffer, and a
// reserve of exactly the needed size on each call would make that quadratic
// on standard libraries that honour the request literally.
void Reserve(std::string& out, size_t extra) {
  size_t need = out.size() + extra;
  if (need > out.capacity()) out.reserve(std::max(need, 2 * out.capacity()));
}

// LineSplitter walks the lines of a text split on CRLF, lone CR and lone LF
// (WHATWG: each is one line end). A text ending in a line end has a final
// empty line, so that the client rebuilds the trailing newline. memchr finds
// each kind of line end at memory speed; the two cursors only move forward,
// so the walk is linear however the kinds interleave.
class LineSplitter {
 public:
  explicit LineSplitter(std::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {
    next_lf_ = Find('\n');
    next_cr_ = Find('\r');
  }

  // Next stores the next line and returns false after the last one.
  bool Next(std::string_view* line) {
    if (done_) return false;
    if (next_lf_ < p_) next_lf_ = Find('\n');
    if (next_cr_ < p_) next_cr_ = Find('\r');
    const char* eol = std::min(next_lf_, next_cr_);
    *line = std::string_view(p_, static_cast<size_t>(eol - p_));
    if (eol == end_) {
      done_ = true;
    } else {
      p_ = eol + 1;
      if (*eol == '\r' && p_ < end_ && *p_ == '\n') ++p_;
    }
    return true;
  }

 private:
  const char* Find(char c) const {
    // memchr wants a non-null pointer even for zero bytes, and an empty
    // string_view may hold nullptr.
    if (p_ == end_) return end_;
    const void* hit = std::memchr(p_, c, static_cast<size_t>(end_ - p_));
    return hit ? static_cast<const char*>(hit) : end_;
  }

  const char* p_;
  const char* end_;
  const char* next_lf_;
  const char* next_cr_;
  bool done_ = false;
};

size_t CountLines(std::string_view text) {
  LineSplitter lines(text);
  std::string_view line;
  size_t n = 0;
  while (lines.Next(&line)) ++n;
  return n;
}

}  // namespace

bool IsValidUtf8(std::string_view s) { return FindInvalidUtf8(s) == kNpos; }

Status ValidateEventType(std::string_view type, size_t max_len) {
  return ValidateLine("event type", type, max_len);
}

Status ValidateEventId(std::string_view id, size_t max_len) {
  return ValidateLine("event id", id, max_len);
}

Status ValidateEventData(std::string_view data, size_t max_len) {
  if (data.size() > max_len) {
    return InvalidArgumentError("event data is " + std::to_string(data.size()) +
                                " bytes, longer than the limit of " +
                                std::to_string(max_len));
  }
  size_t bad = FindInvalidUtf8(data);
  if (bad != kNpos) {
    return InvalidArgumentError("event data is not valid UTF-8 at byte " +
                                std::to_string(bad));
  }
  return Status::Ok();
}

void AppendEventBody(std::string& out, std::string_view type,
                     std::string_view data) {
  static constexpr std::string_view kEvent = "event: ";
  static constexpr std::string_view kData = "data: ";
  // Counting first costs one more memchr pass but makes this the only
  // allocation; copying the data dominates either way.
  size_t lines = CountLines(data);
  size_t extra = data.size() + lines * (kData.size() + 1);
  if (!type.empty()) extra += kEvent.size() + type.size() + 1;
  Reserve(out, extra);

  if (!type.empty()) {
    out.append(kEvent);
    out.append(type);
    out += '\n';
  }
  LineSplitter splitter(data);
  std::string_view line;
  while (splitter.Next(&line)) {
    out.append(kData);
    out.append(line);
    out += '\n';
  }
}

void AppendIdAndEnd(std::string& out, std::string_view id) {
  if (id.empty()) {
    out += '\n';
    return;
  }
  Reserve(out, id.size() + 6);
  out.append("id: ");
  out.append(id);
  out.append("\n\n");
}

void AppendIdAndEnd(std::string& out, const pubsub::TopicCursor& id) {
  Reserve(out, pubsub::kMaxPositionChars + 6);
  out.append("id: ");
  pubsub::AppendPosition(out, id);
  out.append("\n\n");
}

void AppendGapData(std::string& out, const std::vector<std::string>& topics,
                   bool unknown) {
  out += "{\"topics\":[";
  for (size_t i = 0; i < topics.size(); ++i) {
    if (i) out += ',';
    out += '"';
    // Topic names need no escaping (request.cc allows A-Z a-z 0-9 - _ . :
    // @ /); this keeps the JSON valid for any name all the same.
    for (char c : topics[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        static const char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[(c >> 4) & 0xf];
        out += kHex[c & 0xf];
      } else {
        out += c;
      }
    }
    out += '"';
  }
  out += unknown ? "],\"reason\":\"unknown\"}" : "],\"reason\":\"expired\"}";
}

void AppendComment(std::string& out, std::string_view text) {
  Reserve(out, text.size() + 3 * CountLines(text));
  LineSplitter splitter(text);
  std::string_view line;
  while (splitter.Next(&line)) {
    // An empty line is written ":" (the heartbeat form) rather than ": ",
    // which a client would read the same way.
    if (line.empty()) {
      out.append(":\n");
    } else {
      out.append(": ");
      out.append(line);
      out += '\n';
    }
  }
}

void AppendRetry(std::string& out, uint64_t ms) {
  char buf[std::numeric_limits<uint64_t>::digits10 + 1];
  char* end = std::to_chars(buf, buf + sizeof(buf), ms).ptr;
  out.append("retry: ");
  out.append(buf, static_cast<size_t>(end - buf));
  out += '\n';
}

void DecodeEventBody(std::string_view body, std::string* type,
                     std::string* data) {
  static constexpr std::string_view kEvent = "event: ";
  static constexpr std::string_view kData = "data: ";
  type->assign("message");
  data->clear();
  bool first = true;
  while (!body.empty()) {
    size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (line.substr(0, kData.size()) == kData) {
      if (!first) *data += '\n';
      data->append(line.substr(kData.size()));
      first = false;
    } else if (line.substr(0, kEvent.size()) == kEvent) {
      type->assign(line.substr(kEvent.size()));
    }
  }
}

Result<std::string> EncodeEvent(std::string_view type, std::string_view data,
                                std::string_view id) {
  Status s = ValidateEventType(type);
  if (!s.ok()) return s;
  // No size limit on data here: the limit is the publisher's policy (the
  // Hub validates against its configured maximum before encoding).
  s = ValidateEventData(data, std::numeric_limits<size_t>::max());
  if (!s.ok()) return s;
  s = ValidateEventId(id);
  if (!s.ok()) return s;
  std::string out;
  AppendEventBody(out, type, data);
  AppendIdAndEnd(out, id);
  return out;
}

}  // namespace evsse
