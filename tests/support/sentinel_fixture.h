// Test support: a Sentinel-managed Redis, all private to the test: a
// primary and a replica (RedisServer on free TCP ports) and three
// redis-sentinel processes (free ports, a config file each in a temp dir,
// stopped by pid, never by name). Failover is fast: down-after-milliseconds
// and failover-timeout are options (1000 ms and 3000 ms by default), and
// Sentinel's hello and INFO periods are ten times shorter
// (Options::fast_periods).
#ifndef EVSSE_TESTS_SENTINEL_FIXTURE_H_
#define EVSSE_TESTS_SENTINEL_FIXTURE_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "redis_fixture.h"

namespace evsse::testing {

class SentinelGroup {
 public:
  struct Options {
    std::string master = "evsse";
    int down_after_ms = 1000;
    int failover_timeout_ms = 3000;
    // fast_periods: Sentinel's hello and INFO periods ten times shorter
    // (SENTINEL DEBUG publish-period 200 info-period 1000) so discovery
    // and the demotion of a returning primary take a second, not 10-20 s.
    // (Shorter ping and ask periods made elections collide: failovers
    // took 16 s instead of 2.5.) false: the production periods.
    bool fast_periods = true;
  };

  SentinelGroup() : SentinelGroup(Options{}) {}
  explicit SentinelGroup(Options options);
  ~SentinelGroup();  // stops the sentinels, then the servers
  SentinelGroup(const SentinelGroup&) = delete;
  SentinelGroup& operator=(const SentinelGroup&) = delete;

  // Start: the primary, the replica (waits until its link is up), then
  // the sentinels; returns once every sentinel knows the replica and the
  // two other sentinels (a failover is possible from then on).
  ::testing::AssertionResult Start();

  const std::string& master() const { return options_.master; }
  // Flag: "NAME@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3".
  std::string Flag() const;
  std::vector<std::string> SentinelAddresses() const;

  // The two data servers (index 0 starts as the primary).
  RedisServer& server(int i) { return *servers_[i]; }
  // PrimaryIndex: the server the first answering sentinel names (-1: none).
  int PrimaryIndex() const;
  // Role: ROLE's first word of server i ("master", "slave", "" if down).
  std::string Role(int i) const;
  // WaitPrimary waits until the sentinels name server `i` and it answers
  // ROLE master.
  ::testing::AssertionResult WaitPrimary(int i,
                                         std::chrono::milliseconds timeout);
  // WaitRole waits until server i answers ROLE `role` with its replication
  // link up (for "slave").
  ::testing::AssertionResult WaitRole(int i, const std::string& role,
                                      std::chrono::milliseconds timeout);
  // RestartAsReplica: server i (killed) starts again on its port, empty,
  // as a replica of server `of` (as its rewritten config would have it;
  // Sentinel alone would convert it only at its next INFO, up to 10 s).
  ::testing::AssertionResult RestartAsReplica(int i, int of);
  // Sentinel runs a command on sentinel k (nullptr when down).
  ReplyPtr Sentinel(int k, const std::vector<std::string>& argv) const;

 private:
  ::testing::AssertionResult StartSentinel(int k);
  ::testing::AssertionResult SpeedUp(int k);

  Options options_;
  std::string dir_;
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<int> sentinel_ports_;
  std::vector<pid_t> sentinel_pids_;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SENTINEL_FIXTURE_H_
