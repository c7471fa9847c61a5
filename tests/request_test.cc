#include "request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "evsse/pubsub/cursor.h"

namespace evsse::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

QueryParams Query(std::string_view raw, size_t max_params = 256) {
  Result<QueryParams> r = ParseQuery(raw, max_params);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : QueryParams();
}

std::string QueryError(std::string_view raw, size_t max_params = 256) {
  Result<QueryParams> r = ParseQuery(raw, max_params);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

SubscribeRequest Sub(std::string_view raw, const char* header = nullptr,
                     SubscribeLimits limits = {}) {
  Result<SubscribeRequest> r = ParseSubscribe(raw, header, limits);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : SubscribeRequest();
}

std::string SubError(std::string_view raw, const char* header = nullptr,
                     SubscribeLimits limits = {}) {
  Result<SubscribeRequest> r = ParseSubscribe(raw, header, limits);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

pubsub::TopicCursor TC(uint64_t epoch, uint64_t major, uint64_t minor = 0) {
  pubsub::TopicCursor c;
  c.epoch = epoch;
  c.position = {major, minor};
  return c;
}

// ---- EscapeForMessage ----

TEST(EscapeForMessageTest, KeepsPrintableAscii) {
  EXPECT_EQ(EscapeForMessage(""), "");
  EXPECT_EQ(EscapeForMessage("news/eu:1 @x_y-z.{}"), "news/eu:1 @x_y-z.{}");
  EXPECT_EQ(EscapeForMessage("~!"), "~!");
}

TEST(EscapeForMessageTest, EscapesEverythingElse) {
  EXPECT_EQ(EscapeForMessage(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(EscapeForMessage("\r\n\t\x1f\x7f"), "\\x0D\\x0A\\x09\\x1F\\x7F");
  EXPECT_EQ(EscapeForMessage("\xC3\xA9\xFF"), "\\xC3\\xA9\\xFF");
  EXPECT_EQ(EscapeForMessage("a\"b\\c"), "a\\x22b\\x5Cc");
}

TEST(EscapeForMessageTest, Truncates) {
  EXPECT_EQ(EscapeForMessage(std::string(64, 'a')), std::string(64, 'a'));
  EXPECT_EQ(EscapeForMessage(std::string(65, 'a')),
            std::string(64, 'a') + "...");
  EXPECT_EQ(EscapeForMessage("abcdef", 3), "abc...");
  EXPECT_EQ(EscapeForMessage("\xFF\xFF\xFF", 2), "\\xFF\\xFF...");
  EXPECT_EQ(EscapeForMessage("abc", 0), "...");
  EXPECT_EQ(EscapeForMessage("", 0), "");
  EXPECT_EQ(EscapeForMessage(std::string(1 << 20, '\n')).size(), 64 * 4 + 3u);
}

// ---- PercentDecode ----

TEST(PercentDecodeTest, Decodes) {
  EXPECT_EQ(*PercentDecode("", false), "");
  EXPECT_EQ(*PercentDecode("plain", false), "plain");
  EXPECT_EQ(*PercentDecode("a%20b", false), "a b");
  EXPECT_EQ(*PercentDecode("%2f%2F%3a", false), "//:");
  EXPECT_EQ(*PercentDecode("%25", false), "%");
  EXPECT_EQ(*PercentDecode("%2525", false), "%25");  // decoded only once
  EXPECT_EQ(*PercentDecode("%00", false), std::string("\0", 1));
  EXPECT_EQ(*PercentDecode("%C3%A9%ff", false), "\xC3\xA9\xFF");
}

TEST(PercentDecodeTest, Plus) {
  EXPECT_EQ(*PercentDecode("a+b", true), "a b");
  EXPECT_EQ(*PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(*PercentDecode("a%2Bb", true), "a+b");
}

TEST(PercentDecodeTest, BadEscapes) {
  for (const char* s : {"%", "%0", "%zz", "%G1", "%4", "a%", "a%1", "%%", "%1g",
                        "%-1", "% 1", "%0\xFF"}) {
    Result<std::string> r = PercentDecode(s, true);
    ASSERT_FALSE(r.ok()) << s;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), StartsWith("bad percent-encoding"));
  }
  EXPECT_EQ(PercentDecode("ab%zz", false).status().message(),
            "bad percent-encoding \"%zz\" at byte 2 in \"ab%zz\"");
  EXPECT_EQ(PercentDecode("%0", false).status().message(),
            "bad percent-encoding \"%0\" at byte 0 in \"%0\"");
  EXPECT_EQ(PercentDecode("%\n1", false).status().message(),
            "bad percent-encoding \"%\\x0A1\" at byte 0 in \"%\\x0A1\"");
}

// ---- ParseQuery ----

TEST(ParseQueryTest, Basic) {
  EXPECT_THAT(Query(""), ElementsAre());
  EXPECT_THAT(Query("a=1"), ElementsAre(Pair("a", "1")));
  EXPECT_THAT(Query("a=1&b=x%20y"),
              ElementsAre(Pair("a", "1"), Pair("b", "x y")));
}

TEST(ParseQueryTest, OrderAndDuplicatesKept) {
  EXPECT_THAT(Query("t=2&t=1&a=&t=2"),
              ElementsAre(Pair("t", "2"), Pair("t", "1"), Pair("a", ""),
                          Pair("t", "2")));
}

TEST(ParseQueryTest, EmptyPartsSkipped) {
  EXPECT_THAT(Query("a=1&&b=2"), ElementsAre(Pair("a", "1"), Pair("b", "2")));
  EXPECT_THAT(Query("&&&"), ElementsAre());
  EXPECT_THAT(Query("&a=1&"), ElementsAre(Pair("a", "1")));
}

TEST(ParseQueryTest, FirstEqualsSplits) {
  EXPECT_THAT(Query("a"), ElementsAre(Pair("a", "")));
  EXPECT_THAT(Query("a="), ElementsAre(Pair("a", "")));
  EXPECT_THAT(Query("=v"), ElementsAre(Pair("", "v")));
  EXPECT_THAT(Query("="), ElementsAre(Pair("", "")));
  EXPECT_THAT(Query("a=b=c"), ElementsAre(Pair("a", "b=c")));
}

TEST(ParseQueryTest, DecodesKeysAndValuesWithPlus) {
  EXPECT_THAT(Query("k%65y=a+b%2Bc"), ElementsAre(Pair("key", "a b+c")));
  EXPECT_THAT(Query("a%3D1=b%26c"), ElementsAre(Pair("a=1", "b&c")));
  EXPECT_THAT(Query("a+b=c"), ElementsAre(Pair("a b", "c")));
}

TEST(ParseQueryTest, BadEscapes) {
  EXPECT_EQ(QueryError("a=1&b=%zz"),
            "bad percent-encoding \"%zz\" at byte 2 in \"b=%zz\"");
  EXPECT_EQ(QueryError("k%4=1"),
            "bad percent-encoding \"%4\" at byte 1 in \"k%4=1\"");
  EXPECT_EQ(QueryError("topic=%"),
            "bad percent-encoding \"%\" at byte 6 in \"topic=%\"");
  EXPECT_THAT(QueryError("x=%0"), StartsWith("bad percent-encoding"));
  EXPECT_THAT(QueryError("%G1"), StartsWith("bad percent-encoding"));
}

TEST(ParseQueryTest, MaxParams) {
  EXPECT_EQ(Query("a&b&c", 3).size(), 3u);
  EXPECT_EQ(QueryError("a&b&c&d", 3), "more than 3 query parameters");
  // Skipped empty parts do not count.
  EXPECT_EQ(Query("a&&&b&&&c&&&", 3).size(), 3u);
  EXPECT_EQ(QueryError("a", 0), "more than 0 query parameters");
  EXPECT_EQ(Query("", 0).size(), 0u);
}

TEST(ParseQueryTest, HugeInput) {
  std::string raw;
  for (int i = 0; i < 100000; ++i) raw += "k=v&";
  EXPECT_EQ(QueryError(raw), "more than 256 query parameters");
  std::string one_value = "v=" + std::string(1 << 20, 'x');
  EXPECT_EQ(Query(one_value)[0].second.size(), 1u << 20);
}

// ---- FindParam ----

TEST(FindParamTest, FirstMatch) {
  QueryParams q = Query("a=1&b=2&a=3&c");
  EXPECT_EQ(FindParam(q, "a"), "1");
  EXPECT_EQ(FindParam(q, "b"), "2");
  EXPECT_EQ(FindParam(q, "c"), "");
  EXPECT_EQ(FindParam(q, "d"), std::nullopt);
  EXPECT_EQ(FindParam(q, "A"), std::nullopt);  // keys are case sensitive
  EXPECT_EQ(FindParam({}, "a"), std::nullopt);
}

// ---- ValidateTopic ----

TEST(ValidateTopicTest, Accepts) {
  EXPECT_TRUE(ValidateTopic("a", 128).ok());
  EXPECT_TRUE(ValidateTopic("news", 128).ok());
  EXPECT_TRUE(ValidateTopic("AZaz09-_.:@/", 128).ok());
  EXPECT_TRUE(ValidateTopic("user@example.com/inbox:v2", 128).ok());
  EXPECT_TRUE(ValidateTopic(std::string(128, 'x'), 128).ok());
}

TEST(ValidateTopicTest, Empty) {
  Status s = ValidateTopic("", 128);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "empty topic name");
}

TEST(ValidateTopicTest, TooLong) {
  Status s = ValidateTopic(std::string(129, 'x'), 128);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "topic name \"" + std::string(64, 'x') +
                "...\" is 129 bytes, longer than the limit of 128");
  EXPECT_FALSE(ValidateTopic("ab", 1).ok());
}

TEST(ValidateTopicTest, EveryRefusedByte) {
  const std::string allowed =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:@/";
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    std::string topic = std::string("a") + c;
    Status s = ValidateTopic(topic, 128);
    EXPECT_EQ(s.ok(), allowed.find(c) != std::string::npos) << b;
    if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
      EXPECT_THAT(s.message(), HasSubstr("at byte 1"));
    }
  }
}

TEST(ValidateTopicTest, MessagesQuoteEscaped) {
  EXPECT_EQ(ValidateTopic("a b", 128).message(),
            "bad topic name \"a b\": character \" \" at byte 1 is not one of "
            "A-Z a-z 0-9 - _ . : @ /");
  EXPECT_THAT(ValidateTopic(std::string("x\0y", 3), 128).message(),
              StartsWith("bad topic name \"x\\x00y\": character \"\\x00\""));
  EXPECT_THAT(ValidateTopic("caf\xC3\xA9", 128).message(),
              HasSubstr("\"caf\\xC3\\xA9\": character \"\\xC3\" at byte 3"));
  EXPECT_THAT(ValidateTopic("{tag}", 128).message(), HasSubstr("\"{\""));
  EXPECT_THAT(ValidateTopic("a,b", 128).message(), HasSubstr("\",\""));
  EXPECT_THAT(ValidateTopic("a%20", 128).message(), HasSubstr("\"%\""));
}

// ---- ParseSubscribe: topics ----

TEST(ParseSubscribeTest, OneTopic) {
  SubscribeRequest r = Sub("topic=news");
  EXPECT_THAT(r.topics, ElementsAre("news"));
  EXPECT_FALSE(r.cursor.has_value());
  EXPECT_FALSE(r.poll);
}

TEST(ParseSubscribeTest, TopicsInOrderAmongOtherParams) {
  SubscribeRequest r = Sub("topic=b&x=1&topic=a&_=123&topic=c%2Fd");
  EXPECT_THAT(r.topics, ElementsAre("b", "a", "c/d"));
}

TEST(ParseSubscribeTest, MissingTopic) {
  EXPECT_EQ(SubError(""), "missing topic parameter");
  EXPECT_EQ(SubError("x=1&lastEventId=a.1"), "missing topic parameter");
  EXPECT_EQ(SubError("Topic=a"), "missing topic parameter");
  EXPECT_EQ(SubError("topics=a"), "missing topic parameter");
}

TEST(ParseSubscribeTest, EmptyTopic) {
  EXPECT_EQ(SubError("topic="), "empty topic name");
  EXPECT_EQ(SubError("topic"), "empty topic name");
  EXPECT_EQ(SubError("topic=a&topic="), "empty topic name");
}

TEST(ParseSubscribeTest, TooManyTopics) {
  SubscribeLimits limits;
  limits.max_topics = 2;
  EXPECT_EQ(Sub("topic=a&topic=b", nullptr, limits).topics.size(), 2u);
  EXPECT_EQ(SubError("topic=a&topic=b&topic=c", nullptr, limits),
            "more than 2 topics");
  // Default limit is 8.
  std::string raw;
  for (int i = 0; i < 8; ++i) raw += "topic=t" + std::to_string(i) + "&";
  EXPECT_EQ(Sub(raw).topics.size(), 8u);
  EXPECT_EQ(SubError(raw + "topic=t8"), "more than 8 topics");
}

TEST(ParseSubscribeTest, TenThousandTopics) {
  std::string raw;
  for (int i = 0; i < 10000; ++i) raw += "topic=t" + std::to_string(i) + "&";
  EXPECT_THAT(SubError(raw), HasSubstr("more than"));
  SubscribeLimits limits;
  limits.max_topics = 10000;
  EXPECT_EQ(Sub(raw, nullptr, limits).topics.size(), 10000u);
  EXPECT_EQ(SubError(raw + "topic=t0", nullptr, limits),
            "more than 10000 topics");
  limits.max_topics = 20000;
  EXPECT_EQ(SubError(raw + "topic=t5000", nullptr, limits),
            "duplicate topic \"t5000\"");
}

// Regression (hostile clients): thousands of topics used to trip the query
// parameter limit first ("more than 72 query parameters").
TEST(ParseSubscribeTest, ThousandsOfTopicsNameTheTopicLimit) {
  std::string raw;
  for (int i = 0; i < 5000; ++i) raw += "topic=t" + std::to_string(i) + "&";
  EXPECT_EQ(SubError(raw), "more than 8 topics");
  EXPECT_EQ(SubError("x=1&" + raw + "topic"), "more than 8 topics");
  // Other parameters beyond the parameter limit are still reported as such.
  std::string other;
  for (int i = 0; i < 100; ++i) other += "p" + std::to_string(i) + "=1&";
  EXPECT_EQ(SubError("topic=a&" + other), "more than 72 query parameters");
}

TEST(ParseSubscribeTest, DuplicateTopic) {
  EXPECT_EQ(SubError("topic=a&topic=b&topic=a"), "duplicate topic \"a\"");
  // Duplicates are found after decoding.
  EXPECT_EQ(SubError("topic=a%2Fb&topic=a/b"), "duplicate topic \"a/b\"");
  EXPECT_THAT(Sub("topic=a&topic=A").topics, ElementsAre("a", "A"));
}

TEST(ParseSubscribeTest, BadTopicNames) {
  EXPECT_THAT(SubError("topic=a+b"), StartsWith("bad topic name \"a b\""));
  EXPECT_THAT(SubError("topic=a%2Bb"), StartsWith("bad topic name \"a+b\""));
  EXPECT_THAT(SubError("topic=%00"),
              StartsWith("bad topic name \"\\x00\": character \"\\x00\""));
  EXPECT_THAT(SubError("topic=%C3%A9"), StartsWith("bad topic name \"\\xC3"));
  EXPECT_THAT(SubError("topic=%FF%FE"), StartsWith("bad topic name \"\\xFF"));
  EXPECT_THAT(SubError("topic=%0D%0Aevil"),
              StartsWith("bad topic name \"\\x0D\\x0Aevil\""));
  EXPECT_THAT(SubError("topic=%7Bx%7D"), StartsWith("bad topic name \"{x}\""));
  EXPECT_THAT(SubError("topic=a%2Cb"), StartsWith("bad topic name \"a,b\""));
  EXPECT_THAT(SubError("topic=%2525"), StartsWith("bad topic name \"%25\""));
  EXPECT_THAT(SubError("topic=" + std::string(129, 'x')),
              HasSubstr("129 bytes, longer than the limit of 128"));
  SubscribeLimits limits;
  limits.max_topic_length = 3;
  EXPECT_TRUE(ParseSubscribe("topic=abc", nullptr, limits).ok());
  EXPECT_FALSE(ParseSubscribe("topic=abcd", nullptr, limits).ok());
}

TEST(ParseSubscribeTest, BadPercentEncoding) {
  EXPECT_EQ(SubError("topic=%"),
            "bad percent-encoding \"%\" at byte 6 in \"topic=%\"");
  EXPECT_EQ(SubError("topic=%0"),
            "bad percent-encoding \"%0\" at byte 6 in \"topic=%0\"");
  EXPECT_EQ(SubError("topic=%zz"),
            "bad percent-encoding \"%zz\" at byte 6 in \"topic=%zz\"");
  EXPECT_THAT(SubError("topic=a&x=%G"), StartsWith("bad percent-encoding"));
  EXPECT_THAT(SubError("topic=a&lastEventId=a.1%"),
              StartsWith("bad percent-encoding"));
}

TEST(ParseSubscribeTest, HugeQuery) {
  std::string huge_topic = "topic=" + std::string(1 << 20, 'a');
  EXPECT_THAT(SubError(huge_topic), HasSubstr("1048576 bytes"));
  std::string junk(1 << 20, '&');
  EXPECT_EQ(SubError(junk), "missing topic parameter");
  std::string escapes = "topic=a&x=";
  for (int i = 0; i < (1 << 18); ++i) escapes += "%41";
  EXPECT_THAT(Sub(escapes).topics, ElementsAre("a"));
  std::string bad = escapes + "%4";
  std::string msg = SubError(bad);
  EXPECT_THAT(msg, StartsWith("bad percent-encoding \"%4\""));
  EXPECT_LT(msg.size(), 200u);  // the value is quoted truncated
}

// ---- ParseSubscribe: transport ----

TEST(ParseSubscribeTest, Transport) {
  EXPECT_FALSE(Sub("topic=a").poll);
  EXPECT_FALSE(Sub("topic=a&transport=sse").poll);
  EXPECT_TRUE(Sub("topic=a&transport=poll").poll);
  EXPECT_TRUE(Sub("transport=poll&topic=a").poll);
  // The first transport parameter decides.
  EXPECT_TRUE(Sub("topic=a&transport=poll&transport=xyz").poll);
}

TEST(ParseSubscribeTest, BadTransport) {
  EXPECT_EQ(SubError("topic=a&transport=ws"),
            "bad transport \"ws\": use sse or poll");
  EXPECT_EQ(SubError("topic=a&transport="),
            "bad transport \"\": use sse or poll");
  EXPECT_EQ(SubError("topic=a&transport"),
            "bad transport \"\": use sse or poll");
  EXPECT_EQ(SubError("topic=a&transport=SSE"),
            "bad transport \"SSE\": use sse or poll");
  EXPECT_EQ(SubError("topic=a&transport=poll%00"),
            "bad transport \"poll\\x00\": use sse or poll");
}

// ---- ParseSubscribe: cursor ----

TEST(ParseSubscribeTest, CursorFromQuery) {
  SubscribeRequest r = Sub("topic=a&topic=b&lastEventId=k3x9f.1042,k3x9f.1038");
  ASSERT_TRUE(r.cursor.has_value());
  ASSERT_EQ(r.cursor->size(), 2u);
  EXPECT_EQ((*r.cursor)[0].position.major, 1042u);
  EXPECT_EQ((*r.cursor)[1].position.major, 1038u);
  // Percent-encoded commas decode before parsing.
  r = Sub("topic=a&topic=b&lastEventId=1.2%2C3.4-5");
  EXPECT_EQ(r.cursor,
            (std::vector<pubsub::TopicCursor>{TC(1, 2), TC(3, 4, 5)}));
}

TEST(ParseSubscribeTest, CursorFromHeader) {
  SubscribeRequest r = Sub("topic=a", "z.7-1");
  EXPECT_EQ(r.cursor, (std::vector<pubsub::TopicCursor>{TC(35, 7, 1)}));
}

TEST(ParseSubscribeTest, HeaderWinsOverQuery) {
  SubscribeRequest r = Sub("topic=a&lastEventId=a.1", "a.9");
  EXPECT_EQ(r.cursor, (std::vector<pubsub::TopicCursor>{TC(10, 9)}));
  // Only the winner is parsed: a stale bad query id does not matter.
  r = Sub("topic=a&lastEventId=garbage", "a.9");
  EXPECT_EQ(r.cursor, (std::vector<pubsub::TopicCursor>{TC(10, 9)}));
}

TEST(ParseSubscribeTest, EmptyIdMeansNoCursor) {
  EXPECT_FALSE(Sub("topic=a&lastEventId=").cursor.has_value());
  EXPECT_FALSE(Sub("topic=a&lastEventId").cursor.has_value());
  EXPECT_FALSE(Sub("topic=a", "").cursor.has_value());
  // A present header wins even when empty.
  EXPECT_FALSE(Sub("topic=a&lastEventId=a.1", "").cursor.has_value());
}

TEST(ParseSubscribeTest, BadCursorFromHeader) {
  EXPECT_EQ(SubError("topic=a", "A.1"),
            "bad Last-Event-ID: bad character 'A' at byte 0 (epoch is "
            "lower-case base 36, then '.') in \"A.1\"");
  EXPECT_THAT(SubError("topic=a", " a.1"),
              StartsWith("bad Last-Event-ID: bad character ' '"));
  EXPECT_THAT(SubError("topic=a", "a.1,"),
              StartsWith("bad Last-Event-ID: empty position"));
  EXPECT_THAT(SubError("topic=a", "a.18446744073709551616"),
              StartsWith("bad Last-Event-ID: value overflows 64 bits"));
  EXPECT_THAT(SubError("topic=a", "\x1b[31m"), HasSubstr("in \"\\x1B[31m\""));
}

TEST(ParseSubscribeTest, BadCursorFromQuery) {
  EXPECT_THAT(SubError("topic=a&lastEventId=a"),
              StartsWith("bad lastEventId: missing '.'"));
  EXPECT_THAT(SubError("topic=a&lastEventId=a.1%0A"),
              StartsWith("bad lastEventId: bad character '\\x0A'"));
  EXPECT_THAT(SubError("topic=a&lastEventId=a.1+"),
              StartsWith("bad lastEventId: bad character ' '"));
  EXPECT_THAT(SubError("topic=a&lastEventId=%FF.1"),
              StartsWith("bad lastEventId: bad character '\\xFF'"));
}

TEST(ParseSubscribeTest, CursorCountMustMatchTopics) {
  EXPECT_EQ(SubError("topic=a&topic=b", "a.1"),
            "bad Last-Event-ID: 1 position for 2 topics in \"a.1\"");
  EXPECT_EQ(SubError("topic=a&lastEventId=a.1,a.2"),
            "bad lastEventId: 2 positions for 1 topic in \"a.1,a.2\"");
  // More positions than max_topics is caught by the parser itself.
  EXPECT_THAT(
      SubError("topic=a", "a.1,a.2,a.3,a.4,a.5,a.6,a.7,a.8,a.9"),
      StartsWith("bad Last-Event-ID: cursor has more than 8 positions"));
}

TEST(ParseSubscribeTest, CursorLength) {
  SubscribeLimits limits;
  limits.max_topics = 1;
  // Derived bound: max_topics * (kMaxPositionChars + 1) = 56.
  std::string max_position =
      "3w5e11264sgsf.18446744073709551615-18446744073709551615";
  EXPECT_TRUE(ParseSubscribe("topic=a", max_position.c_str(), limits).ok());
  std::string too_long(57, '1');
  EXPECT_EQ(SubError("topic=a", too_long.c_str(), limits),
            "bad Last-Event-ID: 57 bytes, longer than the limit of 56 in \"" +
                too_long + "\"");

  limits.max_cursor_length = 5;
  EXPECT_TRUE(ParseSubscribe("topic=a", "a.123", limits).ok());
  EXPECT_THAT(
      SubError("topic=a&lastEventId=a.1234", nullptr, limits),
      StartsWith("bad lastEventId: 6 bytes, longer than the limit of 5"));

  std::string huge(1 << 20, 'a');
  EXPECT_THAT(SubError("topic=a", huge.c_str()),
              StartsWith("bad Last-Event-ID: 1048576 bytes"));
}

TEST(ParseSubscribeTest, EverythingTogether) {
  SubscribeRequest r =
      Sub("topic=news%2Feu&topic=alerts&transport=poll&lastEventId=1.1,1.2",
          "2.5,2.6-1");
  EXPECT_THAT(r.topics, ElementsAre("news/eu", "alerts"));
  EXPECT_TRUE(r.poll);
  EXPECT_EQ(r.cursor,
            (std::vector<pubsub::TopicCursor>{TC(2, 5), TC(2, 6, 1)}));
}

}  // namespace
}  // namespace evsse::internal
