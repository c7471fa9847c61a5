#include "evsse/stream_parser.h"

#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace evsse {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Index of the first `c` in s[from, size), or s.size(). memchr is vectorised
// by glibc, which keeps line splitting at memory speed.
size_t FindByte(std::string_view s, size_t from, char c) {
  const void* hit = std::memchr(s.data() + from, c, s.size() - from);
  return hit == nullptr ? s.size() : static_cast<const char*>(hit) - s.data();
}

// ScanSequence looks at one sequence starting with a non-ASCII byte, as the
// WHATWG Encoding "UTF-8 decoder" would: it returns how many bytes the
// decoder consumes and sets *valid when they form a code point. When invalid,
// the count is the maximal subpart (at least 1) that becomes one U+FFFD; the
// byte after it is not consumed and starts the next sequence. The end of `n`
// counts as an invalid next byte: lines are decoded whole and a line end
// terminates any sequence.
size_t ScanSequence(const unsigned char* s, size_t n, bool* valid) {
  const unsigned char lead = s[0];
  size_t need;
  unsigned char lower = 0x80;
  unsigned char upper = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) lower = 0xA0;  // overlong
    if (lead == 0xED) upper = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) lower = 0x90;  // overlong
    if (lead == 0xF4) upper = 0x8F;  // above U+10FFFF
  } else {
    *valid = false;  // continuation byte, C0, C1 or F5..FF
    return 1;
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= n || s[i] < lower || s[i] > upper) {
      *valid = false;
      return i;
    }
    lower = 0x80;
    upper = 0xBF;
  }
  *valid = true;
  return need + 1;
}

// ValidPrefix returns the length of the longest valid UTF-8 prefix of
// s[0, n). ASCII is checked eight bytes at a time.
size_t ValidPrefix(const unsigned char* s, size_t n) {
  constexpr uint64_t kHighBits = 0x8080808080808080ULL;
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      for (; i + 8 <= n; i += 8) {
        uint64_t word;
        std::memcpy(&word, s + i, sizeof(word));
        if (word & kHighBits) break;
      }
      while (i < n && s[i] < 0x80) ++i;
      continue;
    }
    bool valid;
    const size_t len = ScanSequence(s + i, n - i, &valid);
    if (!valid) return i;
    i += len;
  }
  return n;
}

// ParseRetry accepts one or more ASCII digits whose value fits in uint64_t.
std::optional<uint64_t> ParseRetry(std::string_view value) {
  if (value.empty()) return std::nullopt;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  uint64_t ms = 0;
  bool overflow = false;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (ms > (kMax - digit) / 10) overflow = true;
    ms = ms * 10 + digit;
  }
  if (overflow) return std::nullopt;
  return ms;
}

}  // namespace

Status StreamParser::Feed(std::string_view chunk) {
  if (!error_.ok()) return error_;
  const size_t n = chunk.size();
  if (n == 0) return error_;
  size_t pos = 0;
  if (last_was_cr_) {
    last_was_cr_ = false;
    if (chunk[0] == '\n') pos = 1;  // the LF of a CRLF split across chunks
  }
  // Next CR and next LF at or after `pos` (n when none); each is searched
  // again only once passed, so a stream without CR scans for CR once.
  size_t next_cr = FindByte(chunk, pos, '\r');
  size_t next_lf = FindByte(chunk, pos, '\n');
  while (true) {
    if (next_cr < pos) next_cr = FindByte(chunk, pos, '\r');
    if (next_lf < pos) next_lf = FindByte(chunk, pos, '\n');
    const size_t end = next_cr < next_lf ? next_cr : next_lf;
    const size_t len = end - pos;
    if (line_.size() + len > limits_.max_line_bytes) return LineTooLong();
    if (end == n) {
      line_.append(chunk.data() + pos, len);
      return error_;
    }
    if (line_.empty()) {
      ProcessLine(chunk.substr(pos, len));  // the common, zero-copy case
    } else {
      line_.append(chunk.data() + pos, len);
      ProcessLine(line_);
      line_.clear();
    }
    if (!error_.ok()) return error_;
    pos = end + 1;
    if (chunk[end] == '\r') {
      if (pos == n) {
        last_was_cr_ = true;
        return error_;
      }
      if (chunk[pos] == '\n') ++pos;
    }
  }
}

void StreamParser::Finish() {
  error_ = Status();
  at_stream_start_ = true;
  last_was_cr_ = false;
  line_.clear();
  data_.clear();
  type_.clear();
  // A new stream's last event ID buffer starts from the persisted id (as
  // browsers do), not from "" as the spec's per-stream buffer would: with ""
  // the first blank line without an id field would forget the id.
  id_buffer_ = last_event_id_;
}

Status StreamParser::LineTooLong() {
  error_ = ResourceExhaustedError(
      "event-stream line longer than max_line_bytes (" +
      std::to_string(limits_.max_line_bytes) + " bytes)");
  return error_;
}

void StreamParser::ProcessLine(std::string_view raw) {
  if (at_stream_start_) {
    // The first line starts the stream, so the decoder's BOM check is a
    // prefix check on it; a line that starts with a split BOM is complete
    // here anyway.
    at_stream_start_ = false;
    if (raw.substr(0, kBom.size()) == kBom) raw.remove_prefix(kBom.size());
  }
  const std::string_view line = DecodeUtf8(raw);
  if (line.empty()) {
    Dispatch();
    return;
  }
  if (line[0] == ':') {
    if (on_comment) on_comment(line.substr(1));
    return;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    ProcessField(line, std::string_view());
    return;
  }
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  ProcessField(line.substr(0, colon), value);
}

void StreamParser::ProcessField(std::string_view name, std::string_view value) {
  if (name == "data") {
    // The buffer grows by value + LF; checked before appending so that a
    // refused line costs no memory.
    if (data_.size() + value.size() + 1 > limits_.max_data_bytes) {
      error_ = ResourceExhaustedError(
          "event-stream data buffer larger than max_data_bytes (" +
          std::to_string(limits_.max_data_bytes) + " bytes)");
      return;
    }
    data_.append(value.data(), value.size());
    data_.push_back('\n');
  } else if (name == "event") {
    type_.assign(value.data(), value.size());
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) {
      id_buffer_.assign(value.data(), value.size());
    }
  } else if (name == "retry") {
    if (std::optional<uint64_t> ms = ParseRetry(value)) {
      retry_ = ms;
      if (on_retry) on_retry(*ms);
    }
  }
}

void StreamParser::Dispatch() {
  last_event_id_ = id_buffer_;
  if (data_.empty()) {
    type_.clear();
    return;
  }
  data_.pop_back();  // every data line appended an LF; drop the last one
  // Swapping hands the buffer to the event and takes back the previous
  // event's storage, so steady-state dispatch neither copies nor allocates.
  event_.data.swap(data_);
  data_.clear();
  if (type_.empty()) {
    event_.type.assign("message");
  } else {
    event_.type.swap(type_);
    type_.clear();
  }
  event_.last_event_id.assign(last_event_id_);
  if (on_event) on_event(event_);
}

std::string_view StreamParser::DecodeUtf8(std::string_view raw) {
  const auto* s = reinterpret_cast<const unsigned char*>(raw.data());
  const size_t n = raw.size();
  size_t i = ValidPrefix(s, n);
  if (i == n) return raw;
  decoded_.assign(raw.data(), i);
  while (i < n) {
    bool valid;
    i += ScanSequence(s + i, n - i, &valid);  // invalid: ValidPrefix said so
    decoded_.append(kReplacement.data(), kReplacement.size());
    const size_t run = ValidPrefix(s + i, n - i);
    decoded_.append(raw.data() + i, run);
    i += run;
  }
  return decoded_;
}

}  // namespace evsse
