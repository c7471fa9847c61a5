// Redis addresses: "host:port", "[v6]:port" or "unix:/path". Pure; any
// thread.
#ifndef EVSSE_REDIS_ADDRESS_H_
#define EVSSE_REDIS_ADDRESS_H_

#include <string>

#include "evsse/status.h"

namespace evsse::redis {

struct Address {
  bool is_unix = false;
  std::string host;  // without brackets
  int port = 0;
  std::string path;  // unix socket
  std::string text;  // as given, for messages
};

// ParseAddress checks `text` and splits it; errors quote the address and
// name the problem.
Result<Address> ParseAddress(const std::string& text);

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_ADDRESS_H_
