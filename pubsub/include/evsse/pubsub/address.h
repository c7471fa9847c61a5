// evsse::pubsub::Address: the address of a server a store connects to
// ("host:port", "[v6-address]:port" or "unix:/absolute/path"). One grammar
// for the configuration language (evsse-alerts --check) and for the stores
// themselves, so that an address a file passes with is one they can use.
// Hosts are names or IP literals; no name is resolved here.
//
// Pure; any thread.
#ifndef EVSSE_PUBSUB_ADDRESS_H_
#define EVSSE_PUBSUB_ADDRESS_H_

#include <string>
#include <string_view>
#include <vector>

#include "evsse/export.h"
#include "evsse/status.h"

namespace evsse::pubsub {

struct Address {
  bool is_unix = false;
  std::string host;  // without brackets
  int port = 0;
  std::string path;  // unix socket
  std::string text;  // as given, for messages
};

// ParseAddress checks `text` and splits it; errors quote the address and
// name the problem ("redis address \"x\": no port ...").
EVSSE_API Result<Address> ParseAddress(std::string_view text);

// SentinelSpec: the value of --redis-sentinel, NAME@HOST:PORT[,HOST:PORT...]
// (the master's name as the sentinels know it, and the sentinels).
struct SentinelSpec {
  std::string master;
  std::vector<std::string> sentinels;
};
// ParseSentinelSpec checks and splits it: a non-empty name without spaces,
// then one or more distinct HOST:PORT addresses (no unix sockets).
EVSSE_API Result<SentinelSpec> ParseSentinelSpec(std::string_view text);

// ParseClusterSeeds checks and splits the value of --redis-cluster,
// HOST:PORT[,HOST:PORT...]: one or more distinct addresses (no unix
// sockets), any nodes of a Redis Cluster.
EVSSE_API Result<std::vector<std::string>> ParseClusterSeeds(
    std::string_view text);

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_ADDRESS_H_
