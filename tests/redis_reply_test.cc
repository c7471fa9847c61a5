// Decoding of Redis replies and evsse's Redis encodings (redis/reply.h):
// pure, no server. Replies are built by hiredis' own parser from RESP bytes.
#include "redis/reply.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <limits>
#include <memory>
#include <string>

#include "resp.h"

namespace evsse::redis {
namespace {

using pubsub::Position;
using ::testing::HasSubstr;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

using testing::ReplyPtr;
ReplyPtr Parse(const std::string& resp) { return testing::ParseResp(resp); }
std::string Bulk(const std::string& s) { return testing::RespBulk(s); }

TEST(StreamIdTest, ParsesAndFormats) {
  EXPECT_EQ(ParseStreamId("1-2"), (Position{1, 2}));
  EXPECT_EQ(ParseStreamId("0-0"), (Position{0, 0}));
  EXPECT_EQ(ParseStreamId("18446744073709551615-18446744073709551615"),
            (Position{kMax, kMax}));
  for (const char* bad : {"", "1", "-1", "1-", "a-1", "1-b", "1-2-3", " 1-2",
                          "18446744073709551616-0", "1--2"}) {
    EXPECT_FALSE(ParseStreamId(bad).has_value()) << bad;
  }
  EXPECT_EQ(FormatStreamId({1700000000000, 7}), "1700000000000-7");
  EXPECT_EQ(FormatStreamId({kMax, kMax}),
            "18446744073709551615-18446744073709551615");
}

TEST(EpochTest, ParsesBase36) {
  EXPECT_EQ(ParseEpoch(""), 0u);  // no stream
  EXPECT_EQ(ParseEpoch("z"), 35u);
  EXPECT_EQ(ParseEpoch("10"), 36u);
  EXPECT_EQ(ParseEpoch("3w5e11264sgsf"), kMax);
  EXPECT_FALSE(ParseEpoch("3w5e11264sgsg").has_value());   // overflow
  EXPECT_FALSE(ParseEpoch("00000000000001").has_value());  // 14 digits
  EXPECT_FALSE(ParseEpoch("A").has_value());
  EXPECT_FALSE(ParseEpoch("k-1").has_value());
  for (uint64_t v : {uint64_t{1}, uint64_t{35}, uint64_t{123456789}, kMax}) {
    EXPECT_EQ(ParseEpoch(FormatEpoch(v)), v);
  }
}

TEST(PayloadTest, DataIsTheRestAndBinarySafe) {
  std::string text =
      "k3x9f\n1700000000000-3\nupdate\n" + std::string("line1\nline2\0end", 15);
  auto p = ParsePayload(text);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->epoch, *ParseEpoch("k3x9f"));
  EXPECT_EQ(p->event.position, (Position{1700000000000, 3}));
  EXPECT_EQ(p->event.type, "update");
  EXPECT_EQ(p->event.data, std::string("line1\nline2\0end", 15));

  auto empty = ParsePayload("a\n1-1\n\n");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->event.type, "");
  EXPECT_EQ(empty->event.data, "");

  for (const char* bad : {"", "a", "a\n1-1", "a\n1-1\nt", "\n1-1\nt\nd",
                          "A\n1-1\nt\nd", "a\n1\nt\nd", "0\n1-1\nt\nd"}) {
    EXPECT_FALSE(ParsePayload(bad).has_value()) << bad;
  }
}

TEST(ErrorStatusTest, MapsServerErrors) {
  EXPECT_EQ(ErrorStatus(Parse("-LOADING Redis is loading\r\n").get()).code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(ErrorStatus(Parse("-BUSY script\r\n").get()).code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(
      ErrorStatus(Parse("-NOAUTH Authentication required.\r\n").get()).code(),
      StatusCode::kUnavailable);
  Status wrongtype = ErrorStatus(
      Parse("-WRONGTYPE Operation against a key holding the wrong kind of "
            "value\r\n")
          .get());
  EXPECT_EQ(wrongtype.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrongtype.message(), HasSubstr("redis: WRONGTYPE"));
  EXPECT_EQ(ErrorStatus(Parse("-ERR syntax error\r\n").get()).code(),
            StatusCode::kInternal);
  EXPECT_TRUE(IsNoScript(
      Parse("-NOSCRIPT No matching script. Please use EVAL.\r\n").get()));
  EXPECT_FALSE(IsNoScript(Parse("-ERR x\r\n").get()));
  EXPECT_FALSE(IsNoScript(Parse("+NOSCRIPT\r\n").get()));
}

TEST(PublishReplyTest, DecodesEpochAndId) {
  auto r = ParsePublishReply(
      Parse("*2\r\n" + Bulk("k3x9f") + Bulk("1700000000000-0")).get());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->epoch, *ParseEpoch("k3x9f"));
  EXPECT_EQ(r->id, (Position{1700000000000, 0}));

  for (const std::string& bad :
       {std::string("*1\r\n") + Bulk("k"), "*2\r\n" + Bulk("") + Bulk("1-1"),
        "*2\r\n" + Bulk("k") + Bulk("x"), std::string(":1\r\n"),
        "*2\r\n" + Bulk("k") + ":1\r\n"}) {
    auto b = ParsePublishReply(Parse(bad).get());
    EXPECT_EQ(b.status().code(), StatusCode::kInternal) << bad;
  }
  auto err = ParsePublishReply(Parse("-OOM command not allowed\r\n").get());
  EXPECT_EQ(err.status().code(), StatusCode::kUnavailable);
}

TEST(FetchReplyTest, DecodesEntries) {
  std::string entries =
      "*3\r\n"
      "*2\r\n" +
      Bulk("5-1") + "*4\r\n" + Bulk("t") + Bulk("upd") + Bulk("d") +
      Bulk(std::string("a\0\nb", 4)) + "*2\r\n" + Bulk("5-2") + "*2\r\n" +
      Bulk("d") + Bulk("only data") +
      // Someone else's entry: unknown fields are ignored.
      "*2\r\n" + Bulk("6-0") + "*4\r\n" + Bulk("x") + Bulk("y") + Bulk("t") +
      Bulk("z");
  auto r = ParseFetchReply(Parse("*5\r\n" + Bulk("ab") + Bulk("4-9") +
                                 Bulk("5-1") + Bulk("6-0") + entries)
                               .get());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->epoch, *ParseEpoch("ab"));
  EXPECT_EQ(r->max_deleted, (Position{4, 9}));
  EXPECT_EQ(r->first_kept, (Position{5, 1}));
  EXPECT_EQ(r->tail, (Position{6, 0}));
  ASSERT_EQ(r->events.size(), 3u);
  EXPECT_EQ(r->events[0].position, (Position{5, 1}));
  EXPECT_EQ(r->events[0].type, "upd");
  EXPECT_EQ(r->events[0].data, std::string("a\0\nb", 4));
  EXPECT_EQ(r->events[1].type, "");
  EXPECT_EQ(r->events[1].data, "only data");
  EXPECT_EQ(r->events[2].type, "z");
  EXPECT_EQ(r->events[2].data, "");

  auto none = ParseFetchReply(Parse("*5\r\n" + Bulk("") + Bulk("0-0") +
                                    Bulk("0-0") + Bulk("0-0") + "*0\r\n")
                                  .get());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->epoch, 0u);
  EXPECT_TRUE(none->events.empty());

  const std::string ids = Bulk("") + Bulk("0-0") + Bulk("0-0") + Bulk("0-0");
  for (const std::string& bad :
       {"*4\r\n" + Bulk("") + Bulk("0-0") + Bulk("0-0") + "*0\r\n",
        "*5\r\n" + ids + Bulk("x"),
        "*5\r\n" + Bulk("") + Bulk("0") + Bulk("0-0") + Bulk("0-0") + "*0\r\n",
        "*5\r\n" + ids + "*1\r\n" + Bulk("1-1"),
        "*5\r\n" + ids + "*1\r\n*2\r\n" + Bulk("bad") + "*0\r\n"}) {
    auto b = ParseFetchReply(Parse(bad).get());
    EXPECT_EQ(b.status().code(), StatusCode::kInternal) << bad;
  }
}

TEST(FetchReplyTest, DecodesTheExecOfAPageRead) {
  // EXEC of MULTI / EVALSHA fetch (count 0) / XRANGE: the script's
  // metadata, then the entries.
  std::string meta = "*5\r\n" + Bulk("ab") + Bulk("0-0") + Bulk("5-1") +
                     Bulk("6-0") + "*0\r\n";
  std::string entries = "*2\r\n*2\r\n" + Bulk("5-1") + "*4\r\n" + Bulk("t") +
                        Bulk("upd") + Bulk("d") + Bulk("x") + "*2\r\n" +
                        Bulk("6-0") + "*2\r\n" + Bulk("d") + Bulk("y");
  auto r = ParseFetchExecReply(Parse("*2\r\n" + meta + entries).get());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->epoch, *ParseEpoch("ab"));
  EXPECT_EQ(r->first_kept, (Position{5, 1}));
  EXPECT_EQ(r->tail, (Position{6, 0}));
  ASSERT_EQ(r->events.size(), 2u);
  EXPECT_EQ(r->events[0].type, "upd");
  EXPECT_EQ(r->events[1].position, (Position{6, 0}));
  EXPECT_EQ(r->events[1].data, "y");

  // No stream: no epoch, no entries.
  auto none =
      ParseFetchExecReply(Parse("*2\r\n*5\r\n" + Bulk("") + Bulk("0-0") +
                                Bulk("0-0") + Bulk("0-0") + "*0\r\n*0\r\n")
                              .get());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->epoch, 0u);
  EXPECT_TRUE(none->events.empty());

  // Errors: of EXEC, of the script (reported first), of the XRANGE.
  auto aborted =
      ParseFetchExecReply(Parse("-EXECABORT Transaction discarded\r\n").get());
  EXPECT_EQ(aborted.status().code(), StatusCode::kInternal);
  auto wrongtype = ParseFetchExecReply(
      Parse("*2\r\n-WRONGTYPE Operation\r\n-WRONGTYPE Operation\r\n").get());
  EXPECT_EQ(wrongtype.status().code(), StatusCode::kFailedPrecondition);
  auto busy = ParseFetchExecReply(Parse("*2\r\n" + meta + "-BUSY x\r\n").get());
  EXPECT_EQ(busy.status().code(), StatusCode::kUnavailable);
  for (const std::string& bad :
       {"*1\r\n" + meta, "*2\r\n" + meta + Bulk("x"), std::string("$-1\r\n"),
        "*2\r\n" + meta + "*1\r\n*2\r\n" + Bulk("bad") + "*0\r\n"}) {
    auto b = ParseFetchExecReply(Parse(bad).get());
    EXPECT_EQ(b.status().code(), StatusCode::kInternal) << bad;
  }

  auto noscript = Parse("*2\r\n-NOSCRIPT No matching script\r\n*0\r\n");
  EXPECT_TRUE(IsExecNoScript(noscript.get()));
  EXPECT_FALSE(IsExecNoScript(Parse("*2\r\n" + meta + entries).get()));
}

TEST(FetchReplyTest, TrimmedComparesTheCursorWithWhatWasRemoved) {
  FetchReply f;
  EXPECT_FALSE(f.Trimmed({}));  // nothing ever removed
  f.first_kept = {10, 0};       // everything older than 10-0 was trimmed
  EXPECT_TRUE(f.Trimmed({}));
  EXPECT_TRUE(f.Trimmed({9, 5}));
  EXPECT_FALSE(f.Trimmed({10, 0}));
  EXPECT_FALSE(f.Trimmed({12, 0}));
  f.max_deleted = {20, 1};  // an XDEL
  EXPECT_TRUE(f.Trimmed({12, 0}));
  EXPECT_FALSE(f.Trimmed({20, 1}));
}

// The forks: "<old epoch> <end>", newest first. The older record
// ("<tail> <floor_ms>") names no epoch and is skipped; anything else is an
// error, never a guess.
TEST(FetchReplyTest, ForksNameTheEpochsTheStreamContinues) {
  auto reply = [](const std::string& forks) {
    return Parse("*6\r\n" + Bulk("k2") + Bulk("0-0") + Bulk("0-0") +
                 Bulk("30-0") + "*0\r\n" + forks);
  };
  auto two = ParseFetchReply(
      reply("*3\r\n" + Bulk("k1 25-3") + Bulk("24-0 1700") + Bulk("k0 20-0"))
          .get());
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  ASSERT_EQ(two->former.size(), 2u);
  EXPECT_EQ(two->former[0].epoch, *ParseEpoch("k1"));
  EXPECT_EQ(two->former[0].end, (pubsub::Position{25, 3}));
  EXPECT_EQ(two->former[1].epoch, *ParseEpoch("k0"));
  EXPECT_EQ(ContinuedEnd(two->former, *ParseEpoch("k0")),
            (pubsub::Position{20, 0}));
  for (const std::string& bad : {Bulk("k1"), Bulk("k1 x"), Bulk("?? 1-0")}) {
    auto b = ParseFetchReply(reply("*1\r\n" + bad).get());
    EXPECT_EQ(b.status().code(), StatusCode::kInternal) << bad;
  }
}

}  // namespace
}  // namespace evsse::redis
