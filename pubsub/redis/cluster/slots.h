// Redis Cluster addressing: which slot a key hashes to, which primary
// serves a slot (the map CLUSTER SLOTS answers), and the MOVED / ASK
// redirections a server answers for a slot it does not serve. Pure; any
// thread.
#ifndef EVSSE_REDIS_CLUSTER_SLOTS_H_
#define EVSSE_REDIS_CLUSTER_SLOTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/pubsub/address.h"
#include "evsse/status.h"

struct redisReply;

namespace evsse::redis::cluster {

using pubsub::Address;

inline constexpr int kSlots = 16384;

// KeySlot is the cluster slot of `key`: CRC16 (XMODEM) mod 16384 of its hash
// tag (the text between the first '{' and the next '}', when not empty),
// else of the whole key. evsse's keys are tagged per topic
// ("evsse:{orders}:s"), so all of a topic's keys share one slot.
uint16_t KeySlot(std::string_view key);

// NodeAddress builds the address of a cluster node from the host and port
// a server reports. An empty host or "?" (the server does not know how it
// is reached) means the host we asked, `asked_host`.
Address NodeAddress(std::string_view host, int port,
                    std::string_view asked_host);

// SlotMap: for each slot, the primary that serves it and its replicas.
class SlotMap {
 public:
  struct Shard {
    Address primary;
    std::vector<Address> replicas;
  };

  // FromClusterSlots decodes a CLUSTER SLOTS reply, asked of a server on
  // `asked_host`. An error reply, a malformed entry or overlapping ranges
  // are errors (kInternal / kUnavailable as the server said).
  static Result<SlotMap> FromClusterSlots(const redisReply* reply,
                                          std::string_view asked_host);

  // Shard of `slot`, or nullptr when no primary serves it.
  const Shard* ShardOf(uint16_t slot) const;
  // Shards, one per distinct primary, in order of their first slot.
  const std::vector<Shard>& shards() const { return shards_; }
  // Every slot is served.
  bool complete() const;
  // Moved records a MOVED answer: `slot` is now served by `primary` (a
  // primary the map does not know becomes a shard of its own).
  void Moved(uint16_t slot, const Address& primary);

 private:
  int ShardIndex(const Address& primary);

  std::vector<Shard> shards_;
  std::vector<int16_t> owner_ = std::vector<int16_t>(kSlots, -1);
};

// Redirect: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
struct Redirect {
  bool ask = false;  // ASK: this command only, after ASKING
  uint16_t slot = 0;
  Address address;
};
// ParseRedirect reads an error reply's text; nullopt for any other error.
// A redirection to ":port" (the server does not know its host) names
// `asked_host`.
std::optional<Redirect> ParseRedirect(std::string_view error,
                                      std::string_view asked_host);

// SameNode: two addresses name the same server (host and port, or path).
bool SameNode(const Address& a, const Address& b);

}  // namespace evsse::redis::cluster

#endif  // EVSSE_REDIS_CLUSTER_SLOTS_H_
