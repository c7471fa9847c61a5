#include "evsse/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace evsse {
namespace {

using ::testing::HasSubstr;

std::string Body(std::string_view type, std::string_view data) {
  std::string out;
  AppendEventBody(out, type, data);
  return out;
}

std::string Comment(std::string_view text) {
  std::string out;
  AppendComment(out, text);
  return out;
}

std::string Encode(std::string_view type, std::string_view data,
                   std::string_view id) {
  Result<std::string> r = EncodeEvent(type, data, id);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

std::string S(const char* p, size_t n) { return std::string(p, n); }

// ---- IsValidUtf8 ----

TEST(IsValidUtf8Test, Accepts) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, long enough for the word loop"));
  EXPECT_TRUE(IsValidUtf8(S("\0", 1)));
  EXPECT_TRUE(IsValidUtf8("\x7f"));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));          // é
  EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // 😀
  EXPECT_TRUE(IsValidUtf8("\xF3\xBF\xBF\xBF"));
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("abcdefgh\xC3\xA9xyz12345678\xF0\x9F\x98\x80"));
}

TEST(IsValidUtf8Test, RejectsBadLeadBytes) {
  EXPECT_FALSE(IsValidUtf8("\x80"));  // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));  // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));  // overlong
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFE"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(IsValidUtf8Test, RejectsOverlongs) {
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));  // U+07FF in three bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes
}

TEST(IsValidUtf8Test, RejectsSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));              // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xAF\xBF"));              // U+DBFF
  EXPECT_FALSE(IsValidUtf8("\xED\xB0\x80"));              // U+DC00
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));              // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 pair
}

TEST(IsValidUtf8Test, RejectsAboveMax) {
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF4\xBF\xBF\xBF"));
}

TEST(IsValidUtf8Test, RejectsTruncatedAndBadContinuations) {
  EXPECT_FALSE(IsValidUtf8("\xC3"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(IsValidUtf8("abcdefghijk\xF0\x9F\x98"));
  EXPECT_FALSE(IsValidUtf8("\xC3("));
  EXPECT_FALSE(IsValidUtf8("\xE2(\xAC"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82("));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98("));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F(\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC3\xA9\xA9"));  // extra continuation
}

TEST(IsValidUtf8Test, MatchesReferenceDecoderOnAllShortSequences) {
  // Exhaustive over every 1- and 2-byte string and every 3-byte string with
  // a lead byte of E0..EF: compares against a decoder written from the code
  // point definition rather than from the byte-range table.
  auto reference = [](std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      int len = c < 0x80   ? 1
                : c < 0xC0 ? 0
                : c < 0xE0 ? 2
                : c < 0xF0 ? 3
                : c < 0xF8 ? 4
                           : 0;
      if (len == 0 || i + len > s.size()) return false;
      uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
      for (int k = 1; k < len; ++k) {
        unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (d & 0x3F);
      }
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < kMin[len] || cp > 0x10FFFF) return false;
      if (cp >= 0xD800 && cp <= 0xDFFF) return false;
      i += len;
    }
    return true;
  };
  for (int a = 0; a < 256; ++a) {
    std::string one(1, static_cast<char>(a));
    ASSERT_EQ(IsValidUtf8(one), reference(one)) << a;
    for (int b = 0; b < 256; ++b) {
      std::string two = one + static_cast<char>(b);
      ASSERT_EQ(IsValidUtf8(two), reference(two)) << a << " " << b;
    }
  }
  for (int a = 0xE0; a < 0x100; ++a) {
    for (int b = 0x70; b < 0xD0; ++b) {
      for (int c = 0x70; c < 0xD0; ++c) {
        std::string three = {static_cast<char>(a), static_cast<char>(b),
                             static_cast<char>(c)};
        ASSERT_EQ(IsValidUtf8(three), reference(three)) << a << " " << b;
      }
    }
  }
}

// ---- Validation ----

TEST(ValidateEventTypeTest, Accepts) {
  EXPECT_TRUE(ValidateEventType("").ok());
  EXPECT_TRUE(ValidateEventType("alert").ok());
  EXPECT_TRUE(ValidateEventType("caf\xC3\xA9 stock:update").ok());
  EXPECT_TRUE(ValidateEventType(std::string(256, 't')).ok());
}

TEST(ValidateEventTypeTest, RejectsLineBreaksAndNul) {
  Status s = ValidateEventType("abc\ndef");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "event type contains a line feed at byte 3");
  EXPECT_EQ(ValidateEventType("\rx").message(),
            "event type contains a carriage return at byte 0");
  EXPECT_EQ(ValidateEventType("ab\r\n").message(),
            "event type contains a carriage return at byte 2");
  EXPECT_EQ(ValidateEventType(S("a\0b", 3)).message(),
            "event type contains a NUL byte at byte 1");
}

TEST(ValidateEventTypeTest, RejectsInvalidUtf8) {
  EXPECT_EQ(ValidateEventType("ok\xFF").message(),
            "event type is not valid UTF-8 at byte 2");
  EXPECT_EQ(ValidateEventType("\xC3\xA9\xED\xA0\x80").message(),
            "event type is not valid UTF-8 at byte 2");
}

TEST(ValidateEventTypeTest, ReportsTheEarliestProblem) {
  EXPECT_EQ(ValidateEventType("a\xFF\n").message(),
            "event type is not valid UTF-8 at byte 1");
  EXPECT_EQ(ValidateEventType("a\n\xFF").message(),
            "event type contains a line feed at byte 1");
  // A multi-byte sequence cut short by a line break is the first problem.
  EXPECT_EQ(ValidateEventType("a\xC3\n").message(),
            "event type is not valid UTF-8 at byte 1");
}

TEST(ValidateEventTypeTest, Length) {
  Status s = ValidateEventType(std::string(257, 't'));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "event type is 257 bytes, longer than the limit of 256");
  EXPECT_TRUE(ValidateEventType("abcd", 4).ok());
  EXPECT_FALSE(ValidateEventType("abcde", 4).ok());
  EXPECT_FALSE(ValidateEventType("a", 0).ok());
  EXPECT_TRUE(ValidateEventType("", 0).ok());
}

TEST(ValidateEventIdTest, AcceptsAndRejects) {
  EXPECT_TRUE(ValidateEventId("").ok());
  EXPECT_TRUE(ValidateEventId("k3x9f.1042,k3x9f.1038").ok());
  EXPECT_TRUE(ValidateEventId("\xE2\x82\xAC").ok());
  EXPECT_TRUE(ValidateEventId(std::string(1024, '1')).ok());
  EXPECT_EQ(ValidateEventId(std::string(1025, '1')).message(),
            "event id is 1025 bytes, longer than the limit of 1024");
  EXPECT_EQ(ValidateEventId("12\n").message(),
            "event id contains a line feed at byte 2");
  EXPECT_EQ(ValidateEventId("1\r2").message(),
            "event id contains a carriage return at byte 1");
  EXPECT_EQ(ValidateEventId(S("\0", 1)).message(),
            "event id contains a NUL byte at byte 0");
  EXPECT_EQ(ValidateEventId("1\xE2\x82").message(),
            "event id is not valid UTF-8 at byte 1");
  EXPECT_EQ(ValidateEventId("x", 0).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateEventDataTest, AcceptsLineBreaksAndNul) {
  EXPECT_TRUE(ValidateEventData("", 0).ok());
  EXPECT_TRUE(ValidateEventData("a\r\nb\rc\nd", 100).ok());
  EXPECT_TRUE(ValidateEventData(S("a\0b", 3), 3).ok());
  EXPECT_TRUE(ValidateEventData("{\"k\":\"caf\xC3\xA9\"}", 100).ok());
}

TEST(ValidateEventDataTest, Rejects) {
  EXPECT_EQ(ValidateEventData("abcd", 3).message(),
            "event data is 4 bytes, longer than the limit of 3");
  EXPECT_EQ(ValidateEventData("line\n\xC0\x80", 100).message(),
            "event data is not valid UTF-8 at byte 5");
  EXPECT_EQ(ValidateEventData("abcdefghijklmnop\xED\xBF\xBF", 100).message(),
            "event data is not valid UTF-8 at byte 16");
  EXPECT_EQ(ValidateEventData("abcd", 3).code(), StatusCode::kInvalidArgument);
}

// ---- AppendEventBody ----

TEST(AppendEventBodyTest, SimpleData) {
  EXPECT_EQ(Body("", "hello"), "data: hello\n");
  EXPECT_EQ(Body("alert", "hello"), "event: alert\ndata: hello\n");
}

TEST(AppendEventBodyTest, EmptyDataStillHasADataLine) {
  EXPECT_EQ(Body("", ""), "data: \n");
  EXPECT_EQ(Body("ping", ""), "event: ping\ndata: \n");
}

TEST(AppendEventBodyTest, LineFeeds) {
  EXPECT_EQ(Body("", "a\nb"), "data: a\ndata: b\n");
  EXPECT_EQ(Body("", "a\n\nb"), "data: a\ndata: \ndata: b\n");
  EXPECT_EQ(Body("", "\n"), "data: \ndata: \n");
  EXPECT_EQ(Body("", "\na"), "data: \ndata: a\n");
}

TEST(AppendEventBodyTest, CarriageReturns) {
  EXPECT_EQ(Body("", "a\rb"), "data: a\ndata: b\n");
  EXPECT_EQ(Body("", "a\r"), "data: a\ndata: \n");
  EXPECT_EQ(Body("", "\r"), "data: \ndata: \n");
  EXPECT_EQ(Body("", "a\r\rb"), "data: a\ndata: \ndata: b\n");
}

TEST(AppendEventBodyTest, CrlfIsOneLineEnd) {
  EXPECT_EQ(Body("", "a\r\nb"), "data: a\ndata: b\n");
  EXPECT_EQ(Body("", "a\r\n"), "data: a\ndata: \n");
  EXPECT_EQ(Body("", "\r\n"), "data: \ndata: \n");
  EXPECT_EQ(Body("", "a\r\n\r\nb"), "data: a\ndata: \ndata: b\n");
}

TEST(AppendEventBodyTest, MixedLineEnds) {
  // "\r\r\n" is a lone CR and then a CRLF: two line ends.
  EXPECT_EQ(Body("", "a\r\r\nb"), "data: a\ndata: \ndata: b\n");
  // "\n\r" is a LF and then a lone CR: two line ends.
  EXPECT_EQ(Body("", "a\n\rb"), "data: a\ndata: \ndata: b\n");
  EXPECT_EQ(Body("", "1\n2\r3\r\n4"), "data: 1\ndata: 2\ndata: 3\ndata: 4\n");
  EXPECT_EQ(Body("", "\r\n\n\r\r\n"),
            "data: \ndata: \ndata: \ndata: \ndata: \n");
}

TEST(AppendEventBodyTest, LeadingSpaceSurvives) {
  // The client strips exactly one space after the colon: ours.
  EXPECT_EQ(Body("", " indented"), "data:  indented\n");
  EXPECT_EQ(Body("", "a\n  b"), "data: a\ndata:   b\n");
  EXPECT_EQ(Body("", ":not a comment"), "data: :not a comment\n");
}

TEST(AppendEventBodyTest, NulAndUnicodePassThrough) {
  EXPECT_EQ(Body("", S("a\0b", 3)), S("data: a\0b\n", 10));
  EXPECT_EQ(Body("caf\xC3\xA9", "\xF0\x9F\x98\x80\n\xE2\x82\xAC"),
            "event: caf\xC3\xA9\ndata: \xF0\x9F\x98\x80\ndata: \xE2\x82\xAC\n");
}

TEST(AppendEventBodyTest, AppendsToExistingBuffer) {
  std::string out = "retry: 5\n";
  AppendEventBody(out, "t", "x");
  AppendIdAndEnd(out, "1");
  AppendEventBody(out, "", "y");
  AppendIdAndEnd(out, "");
  EXPECT_EQ(out, "retry: 5\nevent: t\ndata: x\nid: 1\n\ndata: y\n\n");
}

TEST(AppendEventBodyTest, LargeData) {
  std::string data;
  std::string expected;
  for (int i = 0; i < 10000; ++i) {
    std::string line(i % 97, static_cast<char>('a' + i % 26));
    const char* eol = i % 3 == 0 ? "\n" : i % 3 == 1 ? "\r" : "\r\n";
    data += line + eol;
    expected += "data: " + line + "\n";
  }
  expected += "data: \n";
  EXPECT_EQ(Body("", data), expected);
}

// ---- AppendIdAndEnd, AppendComment, AppendRetry ----

TEST(AppendIdAndEndTest, Forms) {
  std::string out;
  AppendIdAndEnd(out, "k3x9f.1042");
  EXPECT_EQ(out, "id: k3x9f.1042\n\n");
  out.clear();
  AppendIdAndEnd(out, "");
  EXPECT_EQ(out, "\n");
}

TEST(AppendCommentTest, Forms) {
  EXPECT_EQ(Comment(""), ":\n");
  EXPECT_EQ(Comment("hi"), ": hi\n");
  EXPECT_EQ(Comment(" padded"), ":  padded\n");
  EXPECT_EQ(Comment("a\nb"), ": a\n: b\n");
  EXPECT_EQ(Comment("a\rb\r\nc"), ": a\n: b\n: c\n");
  // Empty lines use the heartbeat form, without a trailing space.
  EXPECT_EQ(Comment("a\n"), ": a\n:\n");
  EXPECT_EQ(Comment("\r\n"), ":\n:\n");
  EXPECT_EQ(Comment("a\r\r\nb"), ": a\n:\n: b\n");
}

TEST(AppendCommentTest, Appends) {
  std::string out = "data: x\n\n";
  AppendComment(out, "");
  AppendComment(out, "keepalive");
  EXPECT_EQ(out, "data: x\n\n:\n: keepalive\n");
}

TEST(AppendRetryTest, Values) {
  std::string out;
  AppendRetry(out, 0);
  AppendRetry(out, 3000);
  AppendRetry(out, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(out, "retry: 0\nretry: 3000\nretry: 18446744073709551615\n");
}

// ---- EncodeEvent ----

TEST(EncodeEventTest, WholeEvents) {
  EXPECT_EQ(Encode("", "hello", ""), "data: hello\n\n");
  EXPECT_EQ(Encode("", "hello", "7"), "data: hello\nid: 7\n\n");
  EXPECT_EQ(Encode("alert", "{\"a\":1}\n{\"b\":2}", "k3.9"),
            "event: alert\ndata: {\"a\":1}\ndata: {\"b\":2}\nid: k3.9\n\n");
  EXPECT_EQ(Encode("", "", ""), "data: \n\n");
  EXPECT_EQ(Encode("t", "a\r\n", "1"), "event: t\ndata: a\ndata: \nid: 1\n\n");
}

TEST(EncodeEventTest, ValidationErrors) {
  Result<std::string> r = EncodeEvent("a\nb", "x", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "event type contains a line feed at byte 1");

  r = EncodeEvent("t", "x", "1\r");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "event id contains a carriage return at byte 1");

  r = EncodeEvent("t", "ok\xFF", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "event data is not valid UTF-8 at byte 2");

  r = EncodeEvent(std::string(300, 't'), "x", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("event type is 300 bytes"));

  r = EncodeEvent("t", "x", std::string(2000, '1'));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("event id is 2000 bytes"));

  EXPECT_FALSE(EncodeEvent(S("\0", 1), "x", "").ok());
  EXPECT_FALSE(EncodeEvent("", "x", S("\0", 1)).ok());
  EXPECT_FALSE(EncodeEvent("\xC0\xAF", "x", "").ok());
  EXPECT_FALSE(EncodeEvent("", "x", "\xED\xA0\x80").ok());
}

TEST(EncodeEventTest, NulInDataIsAllowed) {
  EXPECT_EQ(Encode("", S("\0", 1), ""), S("data: \0\n\n", 9));
}

// ---- Round trip through a reference client ----

// ParsedEvent is what a WHATWG client dispatches for one event.
struct ParsedEvent {
  std::string type = "message";
  std::string data;
  std::string id;
  bool has_id = false;
};

// ParseStream is a small, deliberately naive reading of the WHATWG
// "interpret an event stream" steps, independent of the encoder: it splits
// on CRLF, CR and LF, ignores comments, strips one space after the colon,
// joins data fields with LF and drops the final LF.
std::vector<ParsedEvent> ParseStream(std::string_view stream) {
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < stream.size(); ++i) {
    char c = stream[i];
    if (c == '\r' || c == '\n') {
      lines.push_back(cur);
      cur.clear();
      if (c == '\r' && i + 1 < stream.size() && stream[i + 1] == '\n') ++i;
    } else {
      cur += c;
    }
  }
  // An unterminated last line is discarded, as a client would.
  std::vector<ParsedEvent> events;
  ParsedEvent ev;
  bool has_data = false;
  for (const std::string& line : lines) {
    if (line.empty()) {
      if (has_data) {
        if (!ev.data.empty() && ev.data.back() == '\n') ev.data.pop_back();
        events.push_back(ev);
      }
      ev = ParsedEvent();
      has_data = false;
      continue;
    }
    if (line[0] == ':') continue;
    size_t colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value;
    if (colon != std::string::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    }
    if (field == "data") {
      ev.data += value;
      ev.data += '\n';
      has_data = true;
    } else if (field == "event") {
      ev.type = value;
    } else if (field == "id") {
      ev.id = value;
      ev.has_id = true;
    }
  }
  return events;
}

std::string NormalizeLineEnds(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

TEST(WireRoundTripTest, ReferenceParserSanity) {
  std::vector<ParsedEvent> evs =
      ParseStream(": hi\r\nevent: x\rdata:a\ndata:  b\nid: 9\n\ndata: c");
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].type, "x");
  EXPECT_EQ(evs[0].data, "a\n b");
  EXPECT_EQ(evs[0].id, "9");
}

TEST(WireRoundTripTest, RandomData) {
  const std::vector<std::string> alphabet = {
      "a", " ", "\r", "\n", "\xC3\xA9", ":", std::string(1, '\0')};
  std::mt19937 rng(20240601);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string data;
    size_t pieces = rng() % 24;
    for (size_t i = 0; i < pieces; ++i)
      data += alphabet[rng() % alphabet.size()];
    std::string type = rng() % 2 ? "" : "t";
    std::string id = rng() % 2 ? "" : std::to_string(iter);

    Result<std::string> frame = EncodeEvent(type, data, id);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    // Comments and retry lines around the event must not disturb it.
    std::string stream = ":\n";
    AppendRetry(stream, 1000);
    stream += *frame;
    AppendComment(stream, data);

    std::vector<ParsedEvent> evs = ParseStream(stream);
    ASSERT_EQ(evs.size(), 1u) << testing::PrintToString(stream);
    EXPECT_EQ(evs[0].data, NormalizeLineEnds(data))
        << testing::PrintToString(data);
    EXPECT_EQ(evs[0].type, type.empty() ? "message" : type);
    EXPECT_EQ(evs[0].has_id, !id.empty());
    EXPECT_EQ(evs[0].id, id);
  }
}

TEST(WireRoundTripTest, ManyEventsInOneBuffer) {
  std::mt19937 rng(7);
  std::string stream;
  std::vector<std::string> sent;
  for (int i = 0; i < 500; ++i) {
    std::string data;
    for (size_t n = rng() % 10; n > 0; --n) data += "ab\r\n "[rng() % 5];
    sent.push_back(data);
    AppendEventBody(stream, "", data);
    AppendIdAndEnd(stream, std::to_string(i));
  }
  std::vector<ParsedEvent> evs = ParseStream(stream);
  ASSERT_EQ(evs.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(evs[i].data, NormalizeLineEnds(sent[i]));
    EXPECT_EQ(evs[i].id, std::to_string(i));
  }
}

}  // namespace
}  // namespace evsse

namespace evsse {
namespace {

TEST(DecodeEventBodyTest, ReversesAppendEventBody) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},           {"", "x"},          {"greet", "a\nb"},
      {"t", "a\r\nb\rc"}, {"", "trailing\n"}, {"é", " lead\n\nblank"},
  };
  for (const auto& [type, data] : cases) {
    std::string body;
    AppendEventBody(body, type, data);
    std::string got_type, got_data;
    DecodeEventBody(body, &got_type, &got_data);
    std::string want = data;
    for (size_t i = 0; (i = want.find('\r', i)) != std::string::npos;) {
      if (i + 1 < want.size() && want[i + 1] == '\n')
        want.erase(i, 1);
      else
        want[i] = '\n';
    }
    EXPECT_EQ(got_type, type.empty() ? "message" : type);
    EXPECT_EQ(got_data, want) << "data=" << data;
  }
}

TEST(WireTest, IdFromATopicPosition) {
  std::string out = "data: x\n";
  AppendIdAndEnd(out, pubsub::TopicCursor{35, {1700000000000, 3}});
  EXPECT_EQ(out, "data: x\nid: z.1700000000000-3\n\n");
}

TEST(WireTest, GapDataIsJsonForAnyTopicName) {
  std::string out;
  AppendGapData(out, {"a", "b/c"}, false);
  EXPECT_EQ(out, R"({"topics":["a","b/c"],"reason":"expired"})");
  out.clear();
  AppendGapData(out, {"q\"\\\n"}, true);
  EXPECT_EQ(out, R"({"topics":["q\"\\\u000a"],"reason":"unknown"})");
}

}  // namespace
}  // namespace evsse
