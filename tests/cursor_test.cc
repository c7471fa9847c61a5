#include "evsse/pubsub/cursor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace evsse::pubsub {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TopicCursor TC(uint64_t epoch, uint64_t major, uint64_t minor = 0) {
  TopicCursor c;
  c.epoch = epoch;
  c.position.major = major;
  c.position.minor = minor;
  return c;
}

std::string Base36(uint64_t v) {
  std::string s;
  AppendBase36(s, v);
  return s;
}

std::string Format(const TopicCursor& c) {
  std::string s;
  AppendPosition(s, c);
  return s;
}

// ParseError returns the message of a failed parse, and fails the test when
// the parse succeeds or fails with another code.
std::string ParseError(std::string_view text, size_t max_positions = 8) {
  Result<std::vector<TopicCursor>> r = ParseCursor(text, max_positions);
  EXPECT_FALSE(r.ok()) << "parsed: " << std::string(text);
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::vector<TopicCursor> ParseOk(std::string_view text,
                                 size_t max_positions = 8) {
  Result<std::vector<TopicCursor>> r = ParseCursor(text, max_positions);
  EXPECT_TRUE(r.ok()) << std::string(text) << ": " << r.status().ToString();
  if (!r.ok()) return {};
  return *r;
}

TEST(PositionTest, Ordering) {
  Position a{1, 5};
  Position b{2, 0};
  Position c{2, 1};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_GT(c, a);
  EXPECT_LE(b, b);
  EXPECT_GE(b, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(c, (Position{2, 1}));
}

TEST(AppendBase36Test, Values) {
  EXPECT_EQ(Base36(0), "0");
  EXPECT_EQ(Base36(9), "9");
  EXPECT_EQ(Base36(10), "a");
  EXPECT_EQ(Base36(35), "z");
  EXPECT_EQ(Base36(36), "10");
  EXPECT_EQ(Base36(36 * 36 - 1), "zz");
  EXPECT_EQ(Base36(kMax), "3w5e11264sgsf");
}

TEST(AppendBase36Test, Appends) {
  std::string s = "x=";
  AppendBase36(s, 71);
  EXPECT_EQ(s, "x=1z");
}

TEST(AppendPositionTest, Forms) {
  EXPECT_EQ(Format(TC(0, 0)), "0.0");
  EXPECT_EQ(Format(TC(35, 1042)), "z.1042");
  EXPECT_EQ(Format(TC(35, 1042, 7)), "z.1042-7");
  EXPECT_EQ(Format(TC(kMax, kMax, kMax)),
            "3w5e11264sgsf.18446744073709551615-18446744073709551615");
  EXPECT_EQ(Format(TC(kMax, kMax, kMax)).size(), kMaxPositionChars);
}

TEST(AppendPositionTest, AppendsToExistingText) {
  std::string s = "id:";
  AppendPosition(s, TC(1, 2, 3));
  EXPECT_EQ(s, "id:1.2-3");
}

TEST(FormatCursorTest, JoinsWithCommas) {
  EXPECT_EQ(FormatCursor({}), "");
  EXPECT_EQ(FormatCursor({TC(1, 2)}), "1.2");
  EXPECT_EQ(FormatCursor({TC(1, 2), TC(36, 0, 5), TC(0, 9)}), "1.2,10.0-5,0.9");
}

TEST(ParseCursorTest, HeaderExamples) {
  std::vector<TopicCursor> c = ParseOk("k3x9f.1042");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(Base36(c[0].epoch), "k3x9f");
  EXPECT_EQ(c[0].position, (Position{1042, 0}));

  c = ParseOk("k3x9f.1042,k3x9f.1038");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].epoch, c[1].epoch);
  EXPECT_EQ(c[0].position.major, 1042u);
  EXPECT_EQ(c[1].position.major, 1038u);
}

TEST(ParseCursorTest, RedisForm) {
  std::vector<TopicCursor> c = ParseOk("a.1700000000000-3");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], TC(10, 1700000000000u, 3));
}

TEST(ParseCursorTest, ExplicitZeroMinorEqualsNoMinor) {
  EXPECT_EQ(ParseOk("a.5-0"), ParseOk("a.5"));
  EXPECT_EQ(FormatCursor(ParseOk("a.5-0")), "a.5");
}

TEST(ParseCursorTest, LeadingZerosAreAccepted) {
  // The grammar allows them; they just are not what Format writes.
  EXPECT_EQ(ParseOk("000a.0007-01"), (std::vector<TopicCursor>{TC(10, 7, 1)}));
}

TEST(ParseCursorTest, Zero) {
  EXPECT_EQ(ParseOk("0.0"), (std::vector<TopicCursor>{TC(0, 0)}));
  EXPECT_EQ(ParseOk("0.0-0"), (std::vector<TopicCursor>{TC(0, 0)}));
}

TEST(ParseCursorTest, EpochBoundaries) {
  EXPECT_EQ(ParseOk("3w5e11264sgsf.0")[0].epoch, kMax);
  EXPECT_THAT(ParseError("3w5e11264sgsg.0"), HasSubstr("epoch overflows"));
  // Twelve z's fit easily, thirteen do not (36^13 > 2^64).
  EXPECT_EQ(ParseOk("zzzzzzzzzzzz.0")[0].epoch, 4738381338321616895u);
  EXPECT_THAT(ParseError("zzzzzzzzzzzzz.0"), HasSubstr("epoch overflows"));
  EXPECT_THAT(ParseError("4000000000000.0"), HasSubstr("epoch overflows"));
  // Thirteen characters are allowed even with leading zeros; fourteen not.
  EXPECT_EQ(ParseOk("000000000000z.0")[0].epoch, 35u);
  EXPECT_THAT(ParseError("0000000000000z.0"),
              HasSubstr("epoch is longer than 13 characters"));
}

TEST(ParseCursorTest, ValueBoundaries) {
  EXPECT_EQ(ParseOk("a.18446744073709551615")[0].position.major, kMax);
  EXPECT_THAT(ParseError("a.18446744073709551616"),
              HasSubstr("value overflows 64 bits"));
  EXPECT_THAT(ParseError("a.99999999999999999999"),
              HasSubstr("value overflows 64 bits"));
  EXPECT_EQ(ParseOk("a.00000000000000000001")[0].position.major, 1u);
  EXPECT_THAT(ParseError("a.000000000000000000001"),
              HasSubstr("value is longer than 20 digits"));
}

TEST(ParseCursorTest, MinorBoundaries) {
  EXPECT_EQ(ParseOk("a.1-18446744073709551615")[0].position.minor, kMax);
  EXPECT_THAT(ParseError("a.1-18446744073709551616"),
              HasSubstr("minor value overflows 64 bits"));
  EXPECT_THAT(ParseError("a.1-000000000000000000001"),
              HasSubstr("minor value is longer than 20 digits"));
}

TEST(ParseCursorTest, AllMaximal) {
  std::string text = Format(TC(kMax, kMax, kMax));
  EXPECT_EQ(ParseOk(text), (std::vector<TopicCursor>{TC(kMax, kMax, kMax)}));
}

TEST(ParseCursorTest, Empty) { EXPECT_EQ(ParseError(""), "empty cursor"); }

TEST(ParseCursorTest, EmptyPositions) {
  EXPECT_EQ(ParseError(","), "empty position at byte 0");
  EXPECT_EQ(ParseError(",a.1"), "empty position at byte 0");
  EXPECT_EQ(ParseError("a.1,"), "empty position at byte 4");
  EXPECT_EQ(ParseError("a.1,,b.2"), "empty position at byte 4");
}

TEST(ParseCursorTest, MissingParts) {
  EXPECT_EQ(ParseError("a"), "missing '.' after the epoch at byte 0");
  EXPECT_EQ(ParseError("a.1,b"), "missing '.' after the epoch at byte 4");
  EXPECT_EQ(ParseError("123"), "missing '.' after the epoch at byte 0");
  EXPECT_EQ(ParseError(".1"), "empty epoch at byte 0");
  EXPECT_EQ(ParseError("a."), "empty value at byte 2");
  EXPECT_EQ(ParseError("a.-1"), "empty value at byte 2");
  EXPECT_EQ(ParseError("a.1-"), "empty minor value at byte 4");
}

TEST(ParseCursorTest, BadCharacters) {
  EXPECT_THAT(ParseError("A.1"), HasSubstr("bad character 'A' at byte 0"));
  EXPECT_THAT(ParseError("k3X9f.1"), HasSubstr("bad character 'X' at byte 2"));
  EXPECT_THAT(ParseError("a.1x"), HasSubstr("bad character 'x' at byte 3"));
  EXPECT_THAT(ParseError("a.1-2-3"), HasSubstr("bad character '-' at byte 5"));
  EXPECT_THAT(ParseError("a.1.2"), HasSubstr("bad character '.' at byte 3"));
  EXPECT_THAT(ParseError("a.+1"), HasSubstr("bad character '+' at byte 2"));
  EXPECT_THAT(ParseError("a-1"), HasSubstr("bad character '-' at byte 1"));
  EXPECT_THAT(ParseError("a.1;b.2"), HasSubstr("bad character ';'"));
  EXPECT_THAT(ParseError("a.\xC3\xA9"),
              HasSubstr("bad character '\\xC3' at byte 2"));
  EXPECT_THAT(ParseError(std::string("a.1\0", 4)),
              HasSubstr("bad character '\\x00' at byte 3"));
  EXPECT_THAT(ParseError(std::string("\0", 1)),
              HasSubstr("bad character '\\x00' at byte 0"));
  EXPECT_THAT(ParseError("a.1\n"), HasSubstr("'\\x0A' at byte 3"));
}

TEST(ParseCursorTest, Spaces) {
  EXPECT_THAT(ParseError(" a.1"), HasSubstr("bad character ' ' at byte 0"));
  EXPECT_THAT(ParseError("a.1 "), HasSubstr("bad character ' ' at byte 3"));
  EXPECT_THAT(ParseError("a.1, b.2"), HasSubstr("' ' at byte 4"));
  EXPECT_THAT(ParseError("a.1\t"), HasSubstr("'\\x09' at byte 3"));
}

TEST(ParseCursorTest, TooManyPositions) {
  EXPECT_EQ(ParseOk("a.1,b.2", 2).size(), 2u);
  EXPECT_EQ(ParseError("a.1,b.2,c.3", 2), "cursor has more than 2 positions");
  // Short positions fit the length bound, so the count check is what fires.
  EXPECT_EQ(ParseError("a.1,b.2", 1), "cursor has more than 1 positions");
}

TEST(ParseCursorTest, ZeroMaxPositionsAcceptsNothing) {
  EXPECT_FALSE(ParseCursor("a.1", 0).ok());
}

TEST(ParseCursorTest, LengthBound) {
  // max_positions maximal positions and the commas between them fit.
  std::vector<TopicCursor> big(3, TC(kMax, kMax, kMax));
  std::string text = FormatCursor(big);
  EXPECT_EQ(ParseOk(text, 3), big);
  // One position's worth beyond the bound is rejected before parsing.
  std::string too_long(3 * (kMaxPositionChars + 1) + 1, '0');
  EXPECT_THAT(ParseError(too_long, 3),
              HasSubstr("cursor is 169 bytes, longer than the limit of 168"));
}

TEST(ParseCursorTest, HugeInputsFailFast) {
  std::string huge(8 << 20, 'a');
  EXPECT_THAT(ParseError(huge, 8), HasSubstr("longer than the limit"));
  std::string commas(1 << 20, ',');
  EXPECT_THAT(ParseError(commas, 8), HasSubstr("longer than the limit"));
  // With a huge limit the parser still stops at the first bad byte.
  EXPECT_THAT(ParseError(huge, std::numeric_limits<size_t>::max()),
              HasSubstr("epoch overflows 64 bits at byte 0"));
  std::string ones(8 << 20, '1');
  EXPECT_THAT(ParseError(ones, std::numeric_limits<size_t>::max()),
              HasSubstr("epoch is longer than 13 characters at byte 0"));
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "a.1,";
  many.pop_back();
  EXPECT_EQ(ParseOk(many, 10000).size(), 10000u);
  EXPECT_EQ(ParseError(many, 9999), "cursor has more than 9999 positions");
}

TEST(ParseCursorTest, RandomRoundTrip) {
  std::mt19937_64 rng(0x5ee5c0de);
  // Mix full-width numbers with short ones so every digit count appears.
  auto draw = [&rng]() -> uint64_t {
    uint64_t v = rng();
    int bits = static_cast<int>(rng() % 65);
    return bits == 64 ? v : v & ((uint64_t{1} << bits) - 1);
  };
  for (int iter = 0; iter < 20000; ++iter) {
    size_t n = 1 + rng() % 8;
    std::vector<TopicCursor> cursor;
    for (size_t i = 0; i < n; ++i) {
      cursor.push_back(TC(draw(), draw(), rng() % 3 == 0 ? 0 : draw()));
    }
    std::string text = FormatCursor(cursor);
    Result<std::vector<TopicCursor>> parsed = ParseCursor(text, 8);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
    ASSERT_EQ(*parsed, cursor) << text;
    ASSERT_EQ(FormatCursor(*parsed), text);
  }
}

TEST(ParseCursorTest, RandomGarbageNeverCrashes) {
  // Bytes close to the grammar reach the deep branches more often than
  // uniform noise; whatever parses must format back to an equal cursor.
  static constexpr char kAlphabet[] = "0123456789azAZ.,- \x00\xff";
  std::mt19937_64 rng(42);
  int parsed_count = 0;
  for (int iter = 0; iter < 50000; ++iter) {
    std::string text;
    size_t len = rng() % 40;
    for (size_t i = 0; i < len; ++i) {
      text += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
    }
    Result<std::vector<TopicCursor>> r = ParseCursor(text, 4);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      ASSERT_FALSE(r.status().message().empty());
      continue;
    }
    ++parsed_count;
    ASSERT_FALSE(r->empty());
    ASSERT_LE(r->size(), 4u);
    Result<std::vector<TopicCursor>> again = ParseCursor(FormatCursor(*r), 4);
    ASSERT_TRUE(again.ok()) << text;
    ASSERT_EQ(*again, *r) << text;
  }
  EXPECT_GT(parsed_count, 0);
}

}  // namespace
}  // namespace evsse::pubsub
