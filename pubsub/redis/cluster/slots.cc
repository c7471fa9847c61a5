#include "slots.h"

#include <hiredis/hiredis.h>

#include <string>
#include <string_view>

#include "../reply.h"

namespace evsse::redis::cluster {
namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection,
// the checksum Redis Cluster hashes keys with.
uint16_t Crc16(std::string_view s) {
  uint16_t crc = 0;
  for (unsigned char c : s) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint16_t>(c) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string_view Str(const redisReply* r) {
  return std::string_view(r->str, r->len);
}

std::string Describe(const Address& a) {
  return a.is_unix ? "unix:" + a.path
                   : (a.host.find(':') != std::string::npos
                          ? "[" + a.host + "]:" + std::to_string(a.port)
                          : a.host + ":" + std::to_string(a.port));
}

// NodeOf decodes one node entry of CLUSTER SLOTS: [host, port, id, ...].
bool NodeOf(const redisReply* r, std::string_view asked_host, Address* out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) return false;
  const redisReply* host = r->element[0];
  const redisReply* port = r->element[1];
  if (host->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_INTEGER ||
      port->integer <= 0 || port->integer > 65535) {
    return false;
  }
  *out = NodeAddress(Str(host), static_cast<int>(port->integer), asked_host);
  return true;
}

}  // namespace

uint16_t KeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kSlots - 1);
}

Address NodeAddress(std::string_view host, int port,
                    std::string_view asked_host) {
  Address a;
  a.host = std::string(host.empty() || host == "?" ? asked_host : host);
  a.port = port;
  a.text = Describe(a);
  return a;
}

bool SameNode(const Address& a, const Address& b) {
  if (a.is_unix || b.is_unix) return a.is_unix == b.is_unix && a.path == b.path;
  return a.port == b.port && a.host == b.host;
}

Result<SlotMap> SlotMap::FromClusterSlots(const redisReply* reply,
                                          std::string_view asked_host) {
  if (reply == nullptr) return UnavailableError("redis: no reply");
  if (reply->type == REDIS_REPLY_ERROR) return ErrorStatus(reply);
  if (reply->type != REDIS_REPLY_ARRAY) {
    return InternalError("redis: CLUSTER SLOTS: not an array");
  }
  SlotMap map;
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* e = reply->element[i];
    auto bad = [&](const char* why) {
      return InternalError("redis: CLUSTER SLOTS entry " + std::to_string(i) +
                           ": " + why);
    };
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER) {
      return bad("malformed");
    }
    long long first = e->element[0]->integer;
    long long last = e->element[1]->integer;
    if (first < 0 || last >= kSlots || first > last) return bad("bad range");
    Shard shard;
    if (!NodeOf(e->element[2], asked_host, &shard.primary)) {
      return bad("malformed primary");
    }
    for (size_t r = 3; r < e->elements; ++r) {
      Address replica;
      if (!NodeOf(e->element[r], asked_host, &replica)) {
        return bad("malformed replica");
      }
      shard.replicas.push_back(std::move(replica));
    }
    int index = map.ShardIndex(shard.primary);
    if (map.shards_[index].replicas.empty()) {
      map.shards_[index].replicas = std::move(shard.replicas);
    }
    for (long long s = first; s <= last; ++s) {
      if (map.owner_[s] != -1) return bad("overlapping ranges");
      map.owner_[s] = static_cast<int16_t>(index);
    }
  }
  return map;
}

int SlotMap::ShardIndex(const Address& primary) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (SameNode(shards_[i].primary, primary)) return static_cast<int>(i);
  }
  shards_.push_back(Shard{primary, {}});
  return static_cast<int>(shards_.size() - 1);
}

const SlotMap::Shard* SlotMap::ShardOf(uint16_t slot) const {
  if (slot >= kSlots || owner_[slot] < 0) return nullptr;
  return &shards_[owner_[slot]];
}

bool SlotMap::complete() const {
  for (int16_t o : owner_) {
    if (o < 0) return false;
  }
  return true;
}

void SlotMap::Moved(uint16_t slot, const Address& primary) {
  if (slot >= kSlots) return;
  owner_[slot] = static_cast<int16_t>(ShardIndex(primary));
}

std::optional<Redirect> ParseRedirect(std::string_view error,
                                      std::string_view asked_host) {
  Redirect r;
  if (error.substr(0, 6) == "MOVED ") {
    error.remove_prefix(6);
  } else if (error.substr(0, 4) == "ASK ") {
    r.ask = true;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  size_t space = error.find(' ');
  if (space == std::string_view::npos || space == 0 || space > 5) {
    return std::nullopt;
  }
  unsigned slot = 0;
  for (char c : error.substr(0, space)) {
    if (c < '0' || c > '9') return std::nullopt;
    slot = slot * 10 + static_cast<unsigned>(c - '0');
  }
  if (slot >= kSlots) return std::nullopt;
  std::string_view where = error.substr(space + 1);
  // host:port, split at the last colon (an IPv6 host has colons of its own).
  size_t colon = where.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == where.size() ||
      where.size() - colon - 1 > 5) {
    return std::nullopt;
  }
  int port = 0;
  for (char c : where.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port <= 0 || port > 65535) return std::nullopt;
  std::string_view host = where.substr(0, colon);
  if (host.find(' ') != std::string_view::npos) return std::nullopt;
  r.slot = static_cast<uint16_t>(slot);
  r.address = NodeAddress(host, port, asked_host);
  return r;
}

}  // namespace evsse::redis::cluster
