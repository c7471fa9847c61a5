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
Result<Address> ParseAddress(std::string_view text);

}  // namespace evsse::pubsub

#endif  // EVSSE_PUBSUB_ADDRESS_H_
