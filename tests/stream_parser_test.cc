#include "evsse/stream_parser.h"

#include "evsse/client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evsse {
namespace {

using namespace std::string_literals;

// Expected strings spell U+FFFD and U+FEFF as universal character names;
// this file relies on the compiler's UTF-8 execution character set.
static_assert(sizeof("\uFFFD") == 4, "narrow literals must be UTF-8");

struct Ev {
  std::string type;
  std::string data;
  std::string id;

  friend bool operator==(const Ev& a, const Ev& b) {
    return a.type == b.type && a.data == b.data && a.id == b.id;
  }
  friend std::ostream& operator<<(std::ostream& os, const Ev& e) {
    return os << "{type=" << testing::PrintToString(e.type)
              << " data=" << testing::PrintToString(e.data)
              << " id=" << testing::PrintToString(e.id) << "}";
  }
};

// Transcript is everything observable from one run of a parser over a stream.
struct Transcript {
  std::vector<Ev> events;
  std::vector<std::string> comments;
  std::vector<uint64_t> retries;
  std::vector<std::string> order;  // callback kinds, in call order
  Status status;                   // the first error Feed returned
  std::string last_event_id;
  std::optional<uint64_t> retry;

  friend bool operator==(const Transcript& a, const Transcript& b) {
    return a.events == b.events && a.comments == b.comments &&
           a.retries == b.retries && a.order == b.order &&
           a.status == b.status && a.last_event_id == b.last_event_id &&
           a.retry == b.retry;
  }
  friend std::ostream& operator<<(std::ostream& os, const Transcript& t) {
    os << "events=" << testing::PrintToString(t.events)
       << " comments=" << testing::PrintToString(t.comments)
       << " retries=" << testing::PrintToString(t.retries)
       << " order=" << testing::PrintToString(t.order)
       << " status=" << t.status.ToString()
       << " last_event_id=" << testing::PrintToString(t.last_event_id)
       << " retry=" << testing::PrintToString(t.retry);
    return os;
  }
};

void Record(StreamParser& parser, Transcript& t) {
  parser.on_event = [&t](const StreamParser::Event& e) {
    t.events.push_back({e.type, e.data, e.last_event_id});
    t.order.push_back("event");
  };
  parser.on_comment = [&t](std::string_view c) {
    t.comments.emplace_back(c);
    t.order.push_back("comment");
  };
  parser.on_retry = [&t](uint64_t ms) {
    t.retries.push_back(ms);
    t.order.push_back("retry");
  };
}

// Run feeds `stream` cut at the sorted offsets `cuts` (0 and size allowed:
// they produce empty feeds), then calls Finish. With `empty_between`, an
// empty Feed is made between every two pieces. Once Feed fails, the rest is
// still fed and must return the same error without effect.
Transcript Run(const std::string& stream, const std::vector<size_t>& cuts,
               StreamParser::Limits limits = {}, bool empty_between = false) {
  Transcript t;
  StreamParser parser(limits);
  Record(parser, t);
  auto feed = [&](std::string_view piece) {
    Status s = parser.Feed(piece);
    if (t.status.ok()) {
      t.status = s;
    } else {
      EXPECT_EQ(s, t.status) << "error must be sticky";
    }
  };
  size_t from = 0;
  for (size_t cut : cuts) {
    feed(std::string_view(stream).substr(from, cut - from));
    if (empty_between) feed(std::string_view());
    from = cut;
  }
  feed(std::string_view(stream).substr(from));
  // Callbacks after an error or at Finish would show up as a mismatch.
  parser.Finish();
  t.last_event_id = parser.last_event_id();
  t.retry = parser.retry();
  return t;
}

struct Split {
  std::string name;
  std::vector<size_t> cuts;
  bool empty_between = false;
};

// Splits lists every way a case is fed: whole; in two pieces at every offset
// (including the empty first and last pieces); byte by byte, with and without
// empty feeds between; and a few random cuttings with fixed seeds.
std::vector<Split> Splits(size_t n) {
  std::vector<Split> splits;
  splits.push_back({"whole", {}});
  for (size_t k = 0; k <= n; ++k) {
    splits.push_back({"two pieces at " + std::to_string(k), {k}});
  }
  std::vector<size_t> every;
  for (size_t k = 1; k < n; ++k) every.push_back(k);
  splits.push_back({"byte by byte", every});
  splits.push_back({"byte by byte with empty feeds", every, true});
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    std::mt19937 rng(seed);
    std::vector<size_t> cuts;
    const size_t count = rng() % 6 + 1;
    for (size_t i = 0; i < count; ++i) cuts.push_back(rng() % (n + 1));
    std::sort(cuts.begin(), cuts.end());
    splits.push_back({"random seed " + std::to_string(seed), cuts});
  }
  return splits;
}

// ExpectSplitInvariant checks that every way of cutting `stream` gives the
// same transcript as feeding it whole, and returns that transcript.
Transcript ExpectSplitInvariant(const std::string& stream,
                                StreamParser::Limits limits = {}) {
  const Transcript whole = Run(stream, {}, limits);
  for (const Split& split : Splits(stream.size())) {
    const Transcript got = Run(stream, split.cuts, limits, split.empty_between);
    if (!(got == whole)) {
      ADD_FAILURE() << "fed " << split.name << " cuts "
                    << testing::PrintToString(split.cuts) << ":\n  got   "
                    << got << "\n  whole " << whole;
      break;  // one report per stream is enough
    }
  }
  return whole;
}

struct Case {
  std::string name;
  std::string stream;
  std::vector<Ev> events;
  std::vector<std::string> comments = {};
  std::vector<uint64_t> retries = {};
  std::string last_event_id = "";
};

Ev Msg(std::string data, std::string id = "") {
  return {"message", std::move(data), std::move(id)};
}

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      // Line ends.
      {"lf", "data: a\n\n", {Msg("a")}},
      {"crlf", "data: a\r\n\r\n", {Msg("a")}},
      {"cr", "data: a\r\r", {Msg("a")}},
      {"mixed_line_ends",
       "data: a\rdata: b\ndata: c\r\n\r\ndata: d\n\r\n",
       {Msg("a\nb\nc"), Msg("d")}},
      {"cr_cr_lf", "data: a\r\r\ndata: b\r\n\r\n", {Msg("a"), Msg("b")}},
      {"lf_cr_is_two_line_ends",
       "data: a\n\rdata: b\n\n",
       {Msg("a"), Msg("b")}},
      {"crlf_is_one_line_end", "data: a\r\ndata: b\r\n\r\n", {Msg("a\nb")}},
      {"crlf_then_lf", "data: a\r\n\n", {Msg("a")}},
      {"lf_lf_lf_is_one_dispatch",
       "data: a\n\n\n\ndata: b\n\n",
       {Msg("a"), Msg("b")}},
      {"empty_stream", "", {}},
      {"only_line_ends", "\n\n\r\n\r\r\r\n", {}},

      // Byte order mark.
      {"bom_dropped",
       "\xEF\xBB\xBF"
       "data: a\n\n",
       {Msg("a")}},
      {"bom_dropped_only_once",
       "\xEF\xBB\xBF\xEF\xBB\xBF"
       "data: a\n\ndata: b\n\n",
       {Msg("b")}},
      {"bom_then_comment", "\xEF\xBB\xBF:c\n", {}, {"c"}},
      {"bom_then_blank_line", "\xEF\xBB\xBF\ndata: a\n\n", {Msg("a")}},
      {"bom_in_data_kept",
       "data: \xEF\xBB\xBF"
       "x\xEF\xBB\xBF\n\n",
       {Msg("\uFEFFx\uFEFF")}},
      {"bom_on_second_line_kept",
       "data: a\n\xEF\xBB\xBF"
       "data: b\n\n",
       {Msg("a")}},
      {"bom_after_blank_line_kept",
       "\n\xEF\xBB\xBF"
       "data: b\n\n",
       {}},
      {"truncated_bom_is_fffd",
       "\xEF\xBB"
       "data: a\n\ndata: b\n\xEF\xBB\n\n",
       {Msg("b")}},

      // Comments.
      {"comments",
       ": hello\n:\n:no space\n::double\n:  two\ndata: x\n\n",
       {Msg("x")},
       {" hello", "", "no space", ":double", "  two"}},
      {"comment_inside_event",
       "data: a\n: c\ndata: b\n\n",
       {Msg("a\nb")},
       {" c"}},
      {"comment_is_not_a_blank_line", "data: a\n:\n", {}, {""}},

      // Field syntax.
      {"field_without_colon", "data\n\n", {Msg("")}},
      {"empty_value", "data:\n\n", {Msg("")}},
      {"one_space_stripped",
       "data:  x\n\ndata:x\n\ndata:\tx\n\ndata: \n\n",
       {Msg(" x"), Msg("x"), Msg("\tx"), Msg("")}},
      {"value_keeps_later_colons", "data: a: b:c\n\n", {Msg("a: b:c")}},
      {"value_keeps_trailing_space", "data: a \n\n", {Msg("a ")}},
      {"multiline_data", "data: a\ndata:\ndata: b\n\n", {Msg("a\n\nb")}},
      {"data_with_nul", "data: a\0b\n\n"s, {Msg("a\0b"s)}},
      {"unknown_fields_ignored",
       "foo: bar\nDATA: x\nData: y\n data: z\ndata : w\ndatum: v\n\n"
       "data: ok\n\n",
       {Msg("ok")}},

      // Dispatch and the event type.
      {"dispatch_only_on_blank_line",
       "data: a\nevent: e\ndata: b\n\n",
       {{"e", "a\nb", ""}}},
      {"event_type_reset_after_dispatch",
       "event: add\ndata: 1\n\ndata: 2\n\n",
       {{"add", "1", ""}, Msg("2")}},
      {"event_type_reset_by_empty_dispatch",
       "event: add\n\ndata: 1\n\n",
       {Msg("1")}},
      {"event_empty_is_message",
       "event:\ndata: x\n\nevent\ndata: y\n\n",
       {Msg("x"), Msg("y")}},
      {"event_last_wins", "event: a\nevent: b\ndata: x\n\n", {{"b", "x", ""}}},
      {"event_keeps_spaces", "event:  a b \ndata: x\n\n", {{" a b ", "x", ""}}},

      // The last event id.
      {"id_persists",
       "id: 1\ndata: a\n\ndata: b\n\n",
       {Msg("a", "1"), Msg("b", "1")},
       {},
       {},
       "1"},
      {"id_after_data_in_same_event",
       "data: a\nid: 5\n\n",
       {Msg("a", "5")},
       {},
       {},
       "5"},
      {"id_with_nul_ignored",
       "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s,
       {Msg("a", "1"), Msg("b", "1")},
       {},
       {},
       "1"},
      {"id_empty_resets",
       "id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\nid:\ndata: c\n\n",
       {Msg("a", "1"), Msg("b"), Msg("c")}},
      {"id_set_by_blank_line_without_data", "id: 7\n\n", {}, {}, {}, "7"},
      {"id_pending_at_end_not_applied",
       "id: 1\ndata: a\n\nid: 2\n",
       {Msg("a", "1")},
       {},
       {},
       "1"},
      {"id_keeps_spaces",
       "id:  x \ndata: a\n\n",
       {Msg("a", " x ")},
       {},
       {},
       " x "},

      // Retry.
      {"retry_digits",
       "retry: 5000\nretry:10\nretry: 0\n",
       {},
       {},
       {5000, 10, 0}},
      {"retry_leading_zeros", "retry: 03000\n", {}, {}, {3000}},
      {"retry_not_digits_ignored",
       "retry: 100\nretry: 10a\nretry: -1\nretry: 1.5\nretry: +1\n"
       "retry:  10\nretry: 10 \nretry: \nretry\nretry: \xD9\xA3\n",
       {},
       {},
       {100}},
      {"retry_overflow_ignored",
       "retry: 18446744073709551615\nretry: 18446744073709551616\n"
       "retry: 99999999999999999999999999\n",
       {},
       {},
       {kMax64}},
      {"retry_does_not_dispatch",
       "retry: 1\n\ndata: a\n\n",
       {Msg("a")},
       {},
       {1}},

      // End of stream.
      {"unterminated_event_dropped", "data: a\n\ndata: b\n", {Msg("a")}},
      {"unterminated_line_dropped",
       "data: a\n\ndata: b\n\nretry: 5\n\n: c\n\nid: 9\n\ndata: x",
       {Msg("a"), Msg("b")},
       {" c"},
       {5},
       "9"},
      {"unterminated_retry_dropped", "retry: 5", {}},
      {"unterminated_comment_dropped", ": c", {}},
      {"unterminated_event_after_cr", "data: a\r", {}},

      // UTF-8 repair.
      {"utf8_valid",
       "data: \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\n\n",
       {Msg("\u00E9\u20AC\U0001F600")}},
      {"utf8_boundaries_valid",
       "data: \xC2\x80|\xDF\xBF|\xE0\xA0\x80|\xED\x9F\xBF|\xEE\x80\x80|"
       "\xEF\xBF\xBF|\xF0\x90\x80\x80|\xF4\x8F\xBF\xBF\n\n",
       {Msg("\u0080|\u07FF|\u0800|\uD7FF|\uE000|\uFFFF|\U00010000|"
            "\U0010FFFF")}},
      {"utf8_invalid_byte",
       "data: a\xFF"
       "b\xFE\n\n",
       {Msg("a\uFFFDb\uFFFD")}},
      {"utf8_lone_continuations",
       "data: \x80\x80\xBF"
       "a\n\n",
       {Msg("\uFFFD\uFFFD\uFFFDa")}},
      {"utf8_f0_80", "data: \xF0\x80\n\n", {Msg("\uFFFD\uFFFD")}},
      {"utf8_truncated_before_ascii",
       "data: \xE2\x82"
       "A\xF0\x9F\x98"
       "B\xC3"
       "C\n\n",
       {Msg("\uFFFDA\uFFFDB\uFFFDC")}},
      {"utf8_truncated_at_line_end",
       "data: \xE2\x82\ndata: \xF0\x9F\x98\r\r",
       {Msg("\uFFFD\n\uFFFD")}},
      {"utf8_truncated_before_lead",
       "data: \xE2\xE2\x82\xAC\xF0\xC3\xA9\n\n",
       {Msg("\uFFFD\u20AC\uFFFD\u00E9")}},
      {"utf8_overlong",
       "data: \xC0\x80|\xC1\xBF|\xE0\x80\x80|\xE0\x9F\xBF|\xF0\x80\x80\x80|"
       "\xF0\x8F\xBF\xBF\n\n",
       {Msg("\uFFFD\uFFFD|\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|"
            "\uFFFD\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD\uFFFD")}},
      {"utf8_surrogates",
       "data: \xED\xA0\x80|\xED\xBF\xBF\n\n",
       {Msg("\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD")}},
      {"utf8_above_max",
       "data: \xF4\x90\x80\x80|\xF5\x80|\xF8\x88\x80\x80\x80\n\n",
       {Msg("\uFFFD\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD|"
            "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD")}},
      {"utf8_invalid_between_ascii_runs",
       "data: abcdefghijklmnop\xFF"
       "abcdefghijklmnopq\xC3\xA9"
       "0123456789\n\n",
       {Msg("abcdefghijklmnop\uFFFDabcdefghijklmnopq\u00E90123456789")}},
      {"utf8_invalid_in_field_name",
       "dat\xFF"
       "a: x\n\n",
       {}},
      {"utf8_invalid_in_id",
       "id: \xFF\ndata: x\n\n",
       {Msg("x", "\uFFFD")},
       {},
       {},
       "\uFFFD"},
      {"utf8_invalid_in_comment", ":\xC3\n", {}, {"\uFFFD"}},
      {"utf8_invalid_in_event_type",
       "event: \xC3(\ndata: x\n\n",
       {{"\uFFFD(", "x", ""}}},

      // Examples from the HTML standard, section 9.2.
      {"spec_stock_ticker",
       "data: YHOO\ndata: +2\ndata: 10\n\n",
       {Msg("YHOO\n+2\n10")}},
      {"spec_four_blocks",
       ": test stream\n\ndata: first event\nid: 1\n\n"
       "data:second event\nid\n\ndata:  third event\n\n",
       {Msg("first event", "1"), Msg("second event"), Msg(" third event")},
       {" test stream"}},
      {"spec_empty_data", "data\n\ndata\ndata\n\ndata:", {Msg(""), Msg("\n")}},
      {"spec_space_after_colon",
       "data:test\n\ndata: test\n\n",
       {Msg("test"), Msg("test")}},
      {"spec_event_types",
       "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
       "event: add\ndata: 113411\n\n",
       {{"add", "73857293", ""},
        {"remove", "2153", ""},
        {"add", "113411", ""}}},
      {"spec_messages",
       "data: This is the first message.\n\n"
       "data: This is the second message, it\ndata: has two lines.\n\n"
       "data: This is the third message.\n\n",
       {Msg("This is the first message."),
        Msg("This is the second message, it\nhas two lines."),
        Msg("This is the third message.")}},
  };
  return cases;
}

class StreamParserCaseTest : public testing::TestWithParam<Case> {};

TEST_P(StreamParserCaseTest, AllSplitsGiveTheExpectedResult) {
  const Case& c = GetParam();
  const Transcript t = ExpectSplitInvariant(c.stream);
  EXPECT_TRUE(t.status.ok()) << t.status.ToString();
  EXPECT_EQ(t.events, c.events);
  EXPECT_EQ(t.comments, c.comments);
  EXPECT_EQ(t.retries, c.retries);
  EXPECT_EQ(t.last_event_id, c.last_event_id);
  if (c.retries.empty()) {
    EXPECT_EQ(t.retry, std::nullopt);
  } else {
    EXPECT_EQ(t.retry, c.retries.back());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, StreamParserCaseTest,
                         testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(StreamParserTest, CaseNamesAreUnique) {
  std::vector<std::string> names;
  for (const Case& c : Cases()) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
}

// Limits.

StreamParser::Limits LineLimit(size_t bytes) {
  StreamParser::Limits limits;
  limits.max_line_bytes = bytes;
  return limits;
}

StreamParser::Limits DataLimit(size_t bytes) {
  StreamParser::Limits limits;
  limits.max_data_bytes = bytes;
  return limits;
}

TEST(StreamParserLimitsTest, LineAtTheLimitIsAccepted) {
  // "data: ab" is 8 bytes; line ends do not count.
  const Transcript t =
      ExpectSplitInvariant("data: ab\r\n\r\n: 45678\n", LineLimit(8));
  EXPECT_TRUE(t.status.ok()) << t.status.ToString();
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("ab")});
  EXPECT_EQ(t.comments, std::vector<std::string>{" 45678"});
}

TEST(StreamParserLimitsTest, LongerLineFailsAndIsSticky) {
  const Transcript t =
      ExpectSplitInvariant("data: a\n\n: 3456789\ndata: b\n\n", LineLimit(8));
  EXPECT_EQ(t.status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(t.status.message().find("max_line_bytes (8 bytes)"),
            std::string::npos)
      << t.status.message();
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("a")});
  EXPECT_TRUE(t.comments.empty());
}

TEST(StreamParserLimitsTest, UnterminatedLongLineFails) {
  const Transcript t = ExpectSplitInvariant("data: abc", LineLimit(8));
  EXPECT_EQ(t.status.code(), StatusCode::kResourceExhausted);
}

TEST(StreamParserLimitsTest, BomCountsInTheFirstLine) {
  const Transcript t = ExpectSplitInvariant(
      "\xEF\xBB\xBF"
      "data: ab\n\n",
      LineLimit(10));
  EXPECT_EQ(t.status.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(t.events.empty());
}

TEST(StreamParserLimitsTest, DataBufferCountsJoiningLineFeeds) {
  // "ab\nc\n" is 5 bytes, within 6; an event resets the buffer.
  Transcript t = ExpectSplitInvariant(
      "data: ab\ndata: c\n\ndata: abcde\n\ndata:\ndata:\ndata:\n\n",
      DataLimit(6));
  EXPECT_TRUE(t.status.ok()) << t.status.ToString();
  EXPECT_EQ(t.events,
            (std::vector<Ev>{Msg("ab\nc"), Msg("abcde"), Msg("\n\n")}));

  t = ExpectSplitInvariant("data: a\n\ndata: abc\ndata: de\n\ndata: z\n\n",
                           DataLimit(6));
  EXPECT_EQ(t.status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(t.status.message().find("max_data_bytes (6 bytes)"),
            std::string::npos)
      << t.status.message();
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("a")});
}

// The defaults (16 MiB a line, 16 MiB an event's data, the same in
// ClientOptions) take events of several MiB, in one line or several, fed
// in network-sized chunks; past them the error names the option.
TEST(StreamParserLimitsTest, DefaultsTakeEventsOfSeveralMebibytes) {
  const StreamParser::Limits defaults;
  EXPECT_EQ(defaults.max_line_bytes, 16u << 20);
  EXPECT_EQ(defaults.max_data_bytes, 16u << 20);
  const ClientOptions client;
  EXPECT_EQ(client.max_line_bytes, defaults.max_line_bytes);
  EXPECT_EQ(client.max_data_bytes, defaults.max_data_bytes);

  const std::string line(4 << 20, 'x');
  std::string stream = "data: " + line + "\n\ndata: " + line +
                       "\ndata: " + line + "\ndata: " + line + "\n\n";
  StreamParser parser;
  std::vector<size_t> sizes;
  parser.on_event = [&](const StreamParser::Event& e) {
    sizes.push_back(e.data.size());
  };
  for (size_t at = 0; at < stream.size(); at += 16384)
    ASSERT_TRUE(parser.Feed(std::string_view(stream).substr(at, 16384)).ok());
  EXPECT_EQ(sizes, (std::vector<size_t>{4u << 20, (12u << 20) + 2}));

  // 17 MiB in one line, then 17 MiB in lines of 4 MiB.
  Status s = parser.Feed("data: " + std::string(17 << 20, 'y') + "\n\n");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("max_line_bytes (16777216 bytes)"),
            std::string::npos)
      << s.message();
  parser.Finish();
  stream.clear();
  for (int i = 0; i < 5; ++i) stream += "data: " + line + "\n";
  s = parser.Feed(stream);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("max_data_bytes (16777216 bytes)"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(sizes.size(), 2u);
}

TEST(StreamParserLimitsTest, ErrorIsStickyUntilFinish) {
  Transcript t;
  StreamParser parser(LineLimit(4));
  Record(parser, t);
  const Status error = parser.Feed("data: toolong\n\n");
  ASSERT_EQ(error.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(parser.Feed("data: a\n\n"), error);
  EXPECT_EQ(parser.Feed(""), error);
  EXPECT_EQ(parser.Feed(":\n"), error);
  EXPECT_TRUE(t.order.empty());

  parser.Finish();
  EXPECT_TRUE(parser.Feed("data\n\n").ok());
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("")});
}

// Finish and reuse.

TEST(StreamParserFinishTest, DropsPendingEventAndKeepsIdAndRetry) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser
                  .Feed("\xEF\xBB\xBF"
                        "id: 1\nretry: 300\ndata: a\n\n"
                        "event: x\nid: 2\ndata: partial\n")
                  .ok());
  parser.Finish();
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("a", "1")});
  EXPECT_EQ(parser.last_event_id(), "1");
  EXPECT_EQ(parser.retry(), 300u);

  // A new connection: the BOM is checked again, the type and data pending at
  // Finish are gone, the id and retry carry over.
  ASSERT_TRUE(parser
                  .Feed("\xEF\xBB\xBF"
                        "data: b\n\n")
                  .ok());
  EXPECT_EQ(t.events, (std::vector<Ev>{Msg("a", "1"), Msg("b", "1")}));
  EXPECT_EQ(parser.last_event_id(), "1");
  EXPECT_EQ(parser.retry(), 300u);
}

TEST(StreamParserFinishTest, ResetsCarriageReturnState) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("data: a\r").ok());
  parser.Finish();
  // In the new stream "\n" is a first, blank line, so the BOM after it is
  // not at the start and "\uFEFFdata" is an unknown field.
  ASSERT_TRUE(parser
                  .Feed("\n\xEF\xBB\xBF"
                        "data: b\n\n")
                  .ok());
  EXPECT_TRUE(t.events.empty());
}

TEST(StreamParserFinishTest, ResetsPartialLineAndUtf8) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("data: \xE2\x82").ok());
  parser.Finish();
  ASSERT_TRUE(parser.Feed("\xAC\n\ndata: c\n\n").ok());
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("c")});
}

TEST(StreamParserFinishTest, ResetsPartialBom) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("\xEF\xBB").ok());
  parser.Finish();
  ASSERT_TRUE(parser
                  .Feed("\xBF"
                        "data: a\n\n\xEF\xBB\xBF"
                        "data: b\n\n")
                  .ok());
  EXPECT_TRUE(t.events.empty());
  parser.Finish();
  ASSERT_TRUE(parser
                  .Feed("\xEF\xBB\xBF"
                        "data: c\n\n")
                  .ok());
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("c")});
}

TEST(StreamParserFinishTest, IdPendingAtFinishIsNotCarriedOver) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("id: 1\ndata: a\n\nid: 2\ndata: b\n").ok());
  parser.Finish();
  EXPECT_EQ(parser.last_event_id(), "1");
  ASSERT_TRUE(parser.Feed("data: c\n\n").ok());
  EXPECT_EQ(t.events, (std::vector<Ev>{Msg("a", "1"), Msg("c", "1")}));
}

TEST(StreamParserFinishTest, FinishOnFreshParserIsHarmless) {
  StreamParser parser;
  parser.Finish();
  parser.Finish();
  EXPECT_EQ(parser.last_event_id(), "");
  EXPECT_EQ(parser.retry(), std::nullopt);
}

// Other behaviour.

TEST(StreamParserTest, EmptyFeedBetweenCrAndLfKeepsThePair) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("data: a\r").ok());
  ASSERT_TRUE(parser.Feed("").ok());
  ASSERT_TRUE(parser.Feed("\n").ok());
  ASSERT_TRUE(parser.Feed("data: b\n\n").ok());
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("a\nb")});
}

TEST(StreamParserTest, CrAtEndOfChunkEndsTheLineAtOnce) {
  Transcript t;
  StreamParser parser;
  Record(parser, t);
  ASSERT_TRUE(parser.Feed("data: a\n\r").ok());
  EXPECT_EQ(t.events, std::vector<Ev>{Msg("a")});
}

TEST(StreamParserTest, WorksWithoutCallbacks) {
  StreamParser parser;
  ASSERT_TRUE(parser.Feed(": c\nretry: 7\nid: x\ndata: a\n\n").ok());
  EXPECT_EQ(parser.last_event_id(), "x");
  EXPECT_EQ(parser.retry(), 7u);
}

TEST(StreamParserTest, ManyEventsInChunks) {
  std::string stream;
  for (int i = 0; i < 20000; ++i) {
    stream += "id: " + std::to_string(i) + "\nevent: tick\ndata: payload " +
              std::to_string(i) + "\ndata: second line\n\n";
  }
  for (size_t chunk : {1u, 7u, 4096u, 65536u}) {
    size_t count = 0;
    bool in_order = true;
    StreamParser parser;
    parser.on_event = [&](const StreamParser::Event& e) {
      const std::string n = std::to_string(count);
      in_order = in_order && e.type == "tick" && e.last_event_id == n &&
                 e.data == "payload " + n + "\nsecond line";
      ++count;
    };
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      ASSERT_TRUE(
          parser.Feed(std::string_view(stream).substr(pos, chunk)).ok());
    }
    parser.Finish();
    EXPECT_EQ(count, 20000u) << "chunk " << chunk;
    EXPECT_TRUE(in_order) << "chunk " << chunk;
  }
}

}  // namespace
}  // namespace evsse
