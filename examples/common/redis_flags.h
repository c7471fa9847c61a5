// The hello servers' Redis flags (--redis, --redis-sentinel, --redis-cluster,
// --redis-wait-replicas) and their translation into evsse::redis::RedisOptions,
// written once for evhttp_hello and evhtp_hello. Examples-local: not part of
// evsse's API (examples/CMakeLists.txt builds it as evsse_example_common).
#ifndef EVSSE_EXAMPLES_COMMON_REDIS_FLAGS_H_
#define EVSSE_EXAMPLES_COMMON_REDIS_FLAGS_H_

#include <evsse/redis.h>

#include <string>

namespace evsse_examples {

struct RedisFlags {
  std::string redis;      // --redis HOST:PORT
  std::string sentinel;   // --redis-sentinel NAME@HOST:PORT[,HOST:PORT...]
  std::string cluster;    // --redis-cluster HOST:PORT[,HOST:PORT...]
  int wait_replicas = 0;  // --redis-wait-replicas N

  // How many of --redis, --redis-sentinel, --redis-cluster were given.
  int Stores() const {
    return !redis.empty() + !sentinel.empty() + !cluster.empty();
  }
  bool Any() const { return Stores() > 0; }

  // If argv[*i] is one of the four flags and a value follows, takes both
  // (advancing *i past the value) and returns true; else leaves *i alone.
  bool Take(int argc, char** argv, int* i);
};

// The RedisOptions the flags ask for. A malformed --redis-cluster or
// --redis-sentinel value prints "PROG: --redis-cluster: MESSAGE" (or
// --redis-sentinel) to stderr and returns false: the caller exits with 2.
bool ToRedisOptions(const char* prog, const RedisFlags& flags,
                    evsse::redis::RedisOptions* out);

}  // namespace evsse_examples

#endif  // EVSSE_EXAMPLES_COMMON_REDIS_FLAGS_H_
