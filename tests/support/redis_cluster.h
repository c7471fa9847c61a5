// Test support: a private Redis Cluster per test: six redis-server
// processes (RedisServer, TCP on free 127.0.0.1 ports, each in its own temp
// dir) joined by `redis-cli --cluster create ... --cluster-replicas 1`:
// three primaries with one replica each. Stopped by pid with the fixture.
#ifndef EVSSE_TESTS_REDIS_CLUSTER_H_
#define EVSSE_TESTS_REDIS_CLUSTER_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "redis_fixture.h"

namespace evsse::testing {

class RedisCluster {
 public:
  RedisCluster() = default;
  ~RedisCluster() = default;
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Start spawns the six servers, creates the cluster and waits until
  // every node reports cluster_state:ok and serves all 16384 slots.
  ::testing::AssertionResult Start(int node_timeout_ms = 2000);
  // WaitHealthy: every running node says cluster_state:ok, agrees on who
  // serves each slot and lists `replicas` replicas per shard (after a
  // failover or a migration; 0 while a failed primary is still down).
  ::testing::AssertionResult WaitHealthy(int timeout_ms = 20000);
  void set_replicas(int replicas) { replicas_ = replicas; }

  std::vector<std::unique_ptr<RedisServer>>& nodes() { return nodes_; }
  // Seeds: "127.0.0.1:p1,127.0.0.1:p2,..." of every node.
  std::string seeds() const;
  // PrimaryOf: the node that serves `slot` now (asks a running node);
  // nullptr when none is known.
  RedisServer* PrimaryOf(int slot);
  RedisServer* NodeOnPort(int port);

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  int replicas_ = 1;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_REDIS_CLUSTER_H_
