// Decoding of what Redis sends evsse: stream ids, epochs, channel payloads
// and the replies of the Lua scripts (scripts.h). Pure functions over
// hiredis reply objects, no I/O; any thread.
#ifndef EVSSE_REDIS_REPLY_H_
#define EVSSE_REDIS_REPLY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/pubsub/cursor.h"
#include "evsse/status.h"

struct redisReply;

namespace evsse::redis {

// ParseStreamId reads a Redis stream id "ms-seq" (both parts required).
std::optional<pubsub::Position> ParseStreamId(std::string_view text);
// FormatStreamId writes "ms-seq".
std::string FormatStreamId(pubsub::Position p);

// ParseEpoch reads a base-36 epoch (1 to 13 of [0-9a-z], fitting uint64);
// "" is 0 (no stream).
std::optional<uint64_t> ParseEpoch(std::string_view text);
std::string FormatEpoch(uint64_t epoch);

// Payload is one channel message: epoch "\n" id "\n" type "\n" data.
struct Payload {
  uint64_t epoch = 0;
  StoredEvent event;
};
std::optional<Payload> ParsePayload(std::string_view text);

// ErrorStatus maps an error reply to a Status: kUnavailable for a server
// that cannot serve now (LOADING, BUSY, OOM, READONLY, NOAUTH, ...),
// kFailedPrecondition for WRONGTYPE, kInternal otherwise. The message is
// "redis: " and the server's text.
Status ErrorStatus(const redisReply* reply);
// IsNoScript: an EVALSHA for a script the server does not have cached.
bool IsNoScript(const redisReply* reply);

struct PublishReply {
  uint64_t epoch = 0;
  pubsub::Position id;
};
// ParsePublishReply decodes one event's entry of publish.lua's reply:
// {epoch, id}, or the error that stopped that event.
Result<PublishReply> ParsePublishReply(const redisReply* reply);

struct FetchReply {
  uint64_t epoch = 0;            // 0: the stream does not exist
  pubsub::Position max_deleted;  // newest id removed by XDEL
  pubsub::Position first_kept;   // {0,0}: nothing was ever removed
  pubsub::Position tail;
  std::vector<StoredEvent> events;
  // Failover forks (publish.lua), newest first: the epochs this one
  // continues, each up to where it ended.
  std::vector<FormerEpoch> former;

  // Trimmed: entries newer than `after` were trimmed or deleted, so a
  // reader at `after` missed some. A reader exactly at the last trimmed
  // entry is also reported (Redis does not record which id that was): a
  // needless gap, never a silent loss.
  bool Trimmed(pubsub::Position after) const {
    return max_deleted > after ||
           (first_kept != pubsub::Position{} && after < first_kept);
  }
};
// ParseFetchReply decodes fetch.lua's {epoch, max_deleted, first_kept,
// tail, entries} (or an error reply).
Result<FetchReply> ParseFetchReply(const redisReply* reply);
// ParseFetchExecReply decodes the EXEC of a page read: {fetch.lua's reply
// with count 0, the XRANGE's entries}, or an error (of EXEC or of either
// command; the script's is reported first).
Result<FetchReply> ParseFetchExecReply(const redisReply* reply);
// IsExecNoScript: the EVALSHA queued first in a MULTI found no script.
bool IsExecNoScript(const redisReply* reply);

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_REPLY_H_
