// FailoverFixture: the rig that failover_test, sentinel_test and
// cluster_link_test share: an event loop with a tick, evsse nodes as child
// processes (node_process.h) started with the test's Redis flags, the
// reconnecting subscribers and the sequence publisher of failover_support.h,
// and a TearDown that stops it all and checks that every node exited 0.
// Each test's fixture adds its store (one Redis, a Sentinel group, a
// cluster) and its own checks.
#ifndef EVSSE_TESTS_SUPPORT_FAILOVER_FIXTURE_H_
#define EVSSE_TESTS_SUPPORT_FAILOVER_FIXTURE_H_

#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "failover_support.h"
#include "node_process.h"

namespace evsse::testing {

// EnvInt: the positive integer in environment variable `name`, else
// `fallback` (the soak knobs: FAILOVER_SECONDS, SENTINEL_RATE, ...).
int EnvInt(const char* name, int fallback);

// kHelloBin: the evhttp_hello binary the failover tests start their nodes
// from, null where it is not built. EVSSE_HELLO_BIN is the test target's
// compile definition: this header reads it in the test's own file (the
// constant has internal linkage).
#ifdef EVSSE_HELLO_BIN
constexpr const char* kHelloBin = EVSSE_HELLO_BIN;
#else
constexpr const char* kHelloBin = nullptr;
#endif

class FailoverFixture : public ::testing::Test {
 protected:
  // SetUpLoop creates base_ with a 10 ms tick, so that EVLOOP_ONCE returns
  // even when nothing happens. Call it from SetUp (it ASSERTs).
  void SetUpLoop();
  // SkipReason: why this test does not run here, "" when it does: no node
  // binary (`hello_bin` null), or it is the test named Soak and `soak_env`
  // (its seconds) is not set. SetUp: GTEST_SKIP() << it when not empty.
  static std::string SkipReason(const char* hello_bin, const char* soak_env);
  // TestName: the name of the running test (without its fixture's).
  static std::string TestName();
  // TearDown: the publisher stopped, the clients closed, every node stopped
  // (SIGTERM; one that was running must exit 0), the loop freed.
  void TearDown() override;

  // StartNode: one more node, `binary` (evhttp_hello or evhtp_hello) on a
  // free port (appended to ports_), its output in `log_path`, with the
  // Redis flags `redis_args`; waits until it answers (NodeProcess).
  ::testing::AssertionResult StartNode(
      const std::string& binary, const std::string& log_path,
      const std::vector<std::string>& redis_args);

  // StartClients: the reconnecting subscribers of SequenceClients over
  // ports_ and topics_: on each node one of a topic, one of another and
  // one of all of them. Every client lists the other nodes as fallbacks.
  void StartClients();
  // WaitLive: from then on all clients are live, and the numbered events
  // that follow reach them all.
  bool WaitLive() { return clients_->WaitLive(); }

  bool RunUntil(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout);
  void RunFor(std::chrono::milliseconds d);

  // StartPublisher: a SequencePublisher over ports_ and topics_ at
  // publisher_rate_ sequence numbers per second.
  void StartPublisher();
  // WaitAccepted runs the loop until `n` more events were accepted.
  bool WaitAccepted(size_t n, std::chrono::milliseconds timeout);

  // StopAndCollect stops the publisher, waits (30 s at most, else a test
  // failure) until every client has every accepted event of its topics,
  // runs 300 ms more (anything duplicated would show up then), and checks
  // each client's sequence (CheckSequences). `outcomes` gets the
  // publisher's outcomes. The caller reports check.failures (all, or all
  // but those its store excuses).
  SequenceCheck StopAndCollect(std::vector<Outcome>* outcomes);

  event_base* base_ = nullptr;
  event* tick_ = nullptr;
  std::vector<std::string> topics_;
  int publisher_rate_ = 200;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::unique_ptr<SequenceClients> clients_;
  std::unique_ptr<SequencePublisher> publisher_;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_FAILOVER_FIXTURE_H_
