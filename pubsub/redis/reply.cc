#include "reply.h"

#include <hiredis/hiredis.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace evsse::redis {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (kMax - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

std::string_view Str(const redisReply* r) {
  return std::string_view(r->str, r->len);
}

bool IsString(const redisReply* r) {
  return r != nullptr &&
         (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

Status Unexpected(std::string_view what) {
  return InternalError("redis: unexpected reply to " + std::string(what));
}

// ParseEntry reads one XRANGE entry {id, {field, value, ...}}; fields other
// than t and d (written by someone else) are ignored.
bool ParseEntry(const redisReply* r, StoredEvent* out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return false;
  const redisReply* id = r->element[0];
  const redisReply* fields = r->element[1];
  if (!IsString(id)) return false;
  auto pos = ParseStreamId(Str(id));
  if (!pos) return false;
  out->position = *pos;
  if (fields->type != REDIS_REPLY_ARRAY) return fields->type == REDIS_REPLY_NIL;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply* k = fields->element[i];
    const redisReply* v = fields->element[i + 1];
    if (!IsString(k) || !IsString(v)) continue;
    if (Str(k) == "t") out->type.assign(v->str, v->len);
    if (Str(k) == "d") out->data.assign(v->str, v->len);
  }
  return true;
}

// ParseEntries reads an XRANGE reply (an array of entries) into `out`.
bool ParseEntries(const redisReply* entries, std::vector<StoredEvent>* out) {
  out->clear();
  out->resize(entries->elements);
  for (size_t i = 0; i < entries->elements; ++i) {
    if (!ParseEntry(entries->element[i], &(*out)[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<pubsub::Position> ParseStreamId(std::string_view text) {
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  pubsub::Position p;
  if (!ParseU64(text.substr(0, dash), &p.major) ||
      !ParseU64(text.substr(dash + 1), &p.minor)) {
    return std::nullopt;
  }
  return p;
}

std::string FormatStreamId(pubsub::Position p) {
  return std::to_string(p.major) + "-" + std::to_string(p.minor);
}

std::optional<uint64_t> ParseEpoch(std::string_view text) {
  if (text.size() > 13) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'z') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    if (v > (kMax - d) / 36) return std::nullopt;
    v = v * 36 + d;
  }
  return v;
}

std::string FormatEpoch(uint64_t epoch) {
  std::string s;
  pubsub::AppendBase36(s, epoch);
  return s;
}

std::optional<Payload> ParsePayload(std::string_view text) {
  size_t a = text.find('\n');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = text.find('\n', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  size_t c = text.find('\n', b + 1);
  if (c == std::string_view::npos) return std::nullopt;
  auto epoch = ParseEpoch(text.substr(0, a));
  auto id = ParseStreamId(text.substr(a + 1, b - a - 1));
  if (!epoch || *epoch == 0 || !id) return std::nullopt;
  Payload p;
  p.epoch = *epoch;
  p.event.position = *id;
  p.event.type.assign(text.substr(b + 1, c - b - 1));
  p.event.data.assign(text.substr(c + 1));  // the rest: any bytes
  return p;
}

Status ErrorStatus(const redisReply* reply) {
  std::string_view text = Str(reply);
  std::string message = "redis: " + std::string(text);
  std::string_view code = text.substr(0, text.find(' '));
  static constexpr std::string_view kUnavailable[] = {
      "LOADING", "BUSY",       "OOM",      "READONLY",    "MASTERDOWN",
      "NOAUTH",  "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "MOVED",
      "ASK",     "MISCONF",    "NOPERM",   "WRONGPASS",
  };
  for (std::string_view u : kUnavailable) {
    if (code == u) return UnavailableError(std::move(message));
  }
  if (code == "WRONGTYPE") return FailedPreconditionError(std::move(message));
  return InternalError(std::move(message));
}

bool IsNoScript(const redisReply* reply) {
  return reply->type == REDIS_REPLY_ERROR &&
         Str(reply).substr(0, 8) == "NOSCRIPT";
}

Result<PublishReply> ParsePublishReply(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_ERROR) return ErrorStatus(reply);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      !IsString(reply->element[0]) || !IsString(reply->element[1])) {
    return Unexpected("publish");
  }
  auto epoch = ParseEpoch(Str(reply->element[0]));
  auto id = ParseStreamId(Str(reply->element[1]));
  if (!epoch || *epoch == 0 || !id) return Unexpected("publish");
  PublishReply out;
  out.epoch = *epoch;
  out.id = *id;
  return out;
}

Result<FetchReply> ParseFetchReply(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_ERROR) return ErrorStatus(reply);
  // The forks (a sixth element) came with failover handling; a reply
  // without them has none.
  if (reply->type != REDIS_REPLY_ARRAY ||
      (reply->elements != 5 && reply->elements != 6) ||
      !IsString(reply->element[0]) || !IsString(reply->element[1]) ||
      !IsString(reply->element[2]) || !IsString(reply->element[3]) ||
      reply->element[4]->type != REDIS_REPLY_ARRAY) {
    return Unexpected("fetch");
  }
  auto epoch = ParseEpoch(Str(reply->element[0]));
  auto max_deleted = ParseStreamId(Str(reply->element[1]));
  auto first_kept = ParseStreamId(Str(reply->element[2]));
  auto tail = ParseStreamId(Str(reply->element[3]));
  if (!epoch || !max_deleted || !first_kept || !tail) {
    return Unexpected("fetch");
  }
  FetchReply out;
  out.epoch = *epoch;
  out.max_deleted = *max_deleted;
  out.first_kept = *first_kept;
  out.tail = *tail;
  if (!ParseEntries(reply->element[4], &out.events)) {
    return Unexpected("fetch (entry)");
  }
  if (reply->elements == 6) {
    const redisReply* forks = reply->element[5];
    if (forks->type != REDIS_REPLY_ARRAY) return Unexpected("fetch (forks)");
    for (size_t i = 0; i < forks->elements; ++i) {
      if (!IsString(forks->element[i])) return Unexpected("fetch (fork)");
      std::string_view f = Str(forks->element[i]);
      size_t sp = f.find(' ');
      if (sp == std::string_view::npos) return Unexpected("fetch (fork)");
      auto old_epoch = ParseEpoch(f.substr(0, sp));
      auto end = ParseStreamId(f.substr(sp + 1));
      if (!old_epoch || *old_epoch == 0 || !end) {
        // "<tail> <floor_ms>", the older record (before forks ended
        // epochs): it does not say which epoch ended, so none continues.
        if (ParseStreamId(f.substr(0, sp))) continue;
        return Unexpected("fetch (fork)");
      }
      out.former.push_back({*old_epoch, *end});
    }
  }
  return out;
}

Result<FetchReply> ParseFetchExecReply(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_ERROR) return ErrorStatus(reply);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
    return Unexpected("fetch (exec)");
  }
  Result<FetchReply> out = ParseFetchReply(reply->element[0]);
  if (!out.ok()) return out;
  const redisReply* entries = reply->element[1];
  if (entries->type == REDIS_REPLY_ERROR) return ErrorStatus(entries);
  if (entries->type != REDIS_REPLY_ARRAY) return Unexpected("fetch (xrange)");
  if (!ParseEntries(entries, &out->events)) {
    return Unexpected("fetch (entry)");
  }
  return out;
}

bool IsExecNoScript(const redisReply* reply) {
  return reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
         IsNoScript(reply->element[0]);
}

}  // namespace evsse::redis
