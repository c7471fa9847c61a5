// RESP in tests: hiredis replies owned by a unique_ptr, and replies made
// from RESP text (hiredis' reader, the one PushConn uses) for decoders
// tested without a server.
#ifndef EVSSE_TESTS_SUPPORT_RESP_H_
#define EVSSE_TESTS_SUPPORT_RESP_H_

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>

namespace evsse::testing {

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// ParseResp turns RESP bytes into a reply (nullptr when incomplete).
inline ReplyPtr ParseResp(const std::string& resp) {
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, resp.data(), resp.size());
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &reply), REDIS_OK);
  redisReaderFree(reader);
  return ReplyPtr(static_cast<redisReply*>(reply));
}

// RespBulk: `s` as a RESP bulk string.
inline std::string RespBulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_RESP_H_
