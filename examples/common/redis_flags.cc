#include "redis_flags.h"

#include <evsse/pubsub/address.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace evsse_examples {

bool RedisFlags::Take(int argc, char** argv, int* i) {
  if (*i + 1 >= argc) return false;
  const std::string a = argv[*i];
  if (a == "--redis")
    redis = argv[++*i];
  else if (a == "--redis-sentinel")
    sentinel = argv[++*i];
  else if (a == "--redis-cluster")
    cluster = argv[++*i];
  else if (a == "--redis-wait-replicas")
    wait_replicas = std::atoi(argv[++*i]);
  else
    return false;
  return true;
}

bool ToRedisOptions(const char* prog, const RedisFlags& flags,
                    evsse::redis::RedisOptions* out) {
  evsse::redis::RedisOptions ro;
  if (!flags.redis.empty()) ro.address = flags.redis;
  if (!flags.cluster.empty()) {
    auto seeds = evsse::pubsub::ParseClusterSeeds(flags.cluster);
    if (!seeds.ok()) {
      std::fprintf(stderr, "%s: --redis-cluster: %s\n", prog,
                   seeds.status().message().c_str());
      return false;
    }
    ro.cluster_seeds = std::move(seeds).value();
  }
  if (!flags.sentinel.empty()) {
    auto spec = evsse::pubsub::ParseSentinelSpec(flags.sentinel);
    if (!spec.ok()) {
      std::fprintf(stderr, "%s: --redis-sentinel: %s\n", prog,
                   spec.status().message().c_str());
      return false;
    }
    ro.sentinel_master = spec->master;
    ro.sentinels = spec->sentinels;
  }
  ro.wait_replicas = flags.wait_replicas;
  *out = std::move(ro);
  return true;
}

}  // namespace evsse_examples
