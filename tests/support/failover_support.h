// Test support for failover tests: a publisher thread that posts a numbered
// sequence to several evsse nodes over HTTP and records the outcome of every
// POST, reconnecting subscribers spread over the nodes (SequenceClients),
// and the check that what subscribers received is exactly what was
// accepted.
#ifndef EVSSE_TESTS_FAILOVER_SUPPORT_H_
#define EVSSE_TESTS_FAILOVER_SUPPORT_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "evsse/client.h"
#include "evsse/stream_parser.h"

struct event_base;

namespace evsse::testing {

// Outcome of publishing sequence number `seq` (the event's data, type "n").
struct Outcome {
  enum Result { kAccepted, kRejected, kUnknown };
  size_t seq = 0;
  std::string topic;
  Result result = kRejected;
  std::string id;     // accepted: the id the node answered
  int tries = 0;      // POSTs sent for it (one per node at most)
  std::string error;  // the last error seen
};

struct PublisherOptions {
  std::vector<int> ports;           // the nodes, tried round-robin
  std::vector<std::string> topics;  // seq goes to topics[seq % size]
  int rate = 200;                   // sequence numbers per second
};

struct PublisherCounts {
  size_t accepted = 0;
  size_t rejected = 0;
  size_t unknown = 0;
  size_t retried = 0;  // POSTs repeated on another node after a clear error
};

// SequencePublisher: one thread, one POST at a time, at a steady rate.
// POST outcomes:
//  - 200 {"id"}: accepted.
//  - connection refused (nothing sent) or 503 (not published): a clear
//    error; the same seq is tried on the next node, and after every node
//    refused it, it is rejected and the publisher moves on.
//  - anything else (no answer after sending, 504, ...): unknown, never
//    retried (the node may have stored it).
class SequencePublisher {
 public:
  explicit SequencePublisher(PublisherOptions options)
      : options_(std::move(options)) {}
  ~SequencePublisher() { Stop(); }
  SequencePublisher(const SequencePublisher&) = delete;
  SequencePublisher& operator=(const SequencePublisher&) = delete;

  void Start();
  void Stop();  // idempotent; returns once the last POST has an outcome
  PublisherCounts Counts() const;
  std::vector<Outcome> Outcomes() const;  // indexed by seq

 private:
  void Run();
  Outcome PublishOne(size_t seq, size_t* next_node);

  PublisherOptions options_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Outcome> outcomes_;
  PublisherCounts counts_;
};

// SubView: what one subscriber received (all its events, in order).
struct SubView {
  std::vector<std::string> topics;
  const std::vector<StreamParser::Event>* events;
  int gaps = 0;  // gap events received
};

struct SequenceCheck {
  size_t delivered = 0;   // numbered events received, all clients
  size_t losses = 0;      // accepted events a client of the topic missed
  size_t duplicates = 0;  // numbered events a client received twice
  size_t gaps = 0;
  std::vector<std::string> failures;  // empty when exact
};

// CheckSequences: each client got, for each of its topics, every accepted
// event with the id its publisher was given, in increasing seq order, once;
// never a rejected event nor one of another topic; an unknown one either
// reached every client of its topic (once, same id) or none. The order
// between topics of a multi-topic client is the stream ids' order, which
// need not be the publish order within one millisecond: not checked.
SequenceCheck CheckSequences(const std::vector<Outcome>& outcomes,
                             const std::vector<SubView>& subs);

// SequenceSub: one reconnecting evsse::Client and everything it reported.
struct SequenceSub {
  std::vector<std::string> topics;
  std::unique_ptr<Client> client;
  std::vector<Client::Event> events;
  std::vector<std::chrono::steady_clock::time_point> at;       // of each event
  std::vector<std::chrono::steady_clock::time_point> open_at;  // streams
  int gaps = 0;
  int errors = 0;
};

// SequenceClients: the subscribers of a failover rig, on the test's loop
// (`base`). On node n (ports[n]): a client of topics[n], one of
// topics[n+1] and one of all the topics (a composite cursor), each
// falling back to the other nodes (retry 100 ms, backoff up to 1 s).
class SequenceClients {
 public:
  SequenceClients(event_base* base, std::vector<int> ports,
                  std::vector<std::string> topics)
      : base_(base), ports_(std::move(ports)), topics_(std::move(topics)) {}

  // Start creates and starts the clients; false (and why) on an error.
  bool Start(std::string* error);
  // WaitLive publishes a probe on every topic (event type "probe") until
  // every client got the latest probe of each of its topics: from then on
  // all are live, and the numbered events that follow reach them all.
  bool WaitLive();
  // HasAllAccepted: `s` has every accepted event of its topics.
  static bool HasAllAccepted(const SequenceSub& s,
                             const std::vector<Outcome>& outcomes);
  // WaitAll runs the loop until every client has every accepted event.
  bool WaitAll(const std::vector<Outcome>& outcomes,
               std::chrono::milliseconds timeout);
  std::vector<SubView> Views() const;
  std::vector<std::unique_ptr<SequenceSub>>& subs() { return subs_; }
  const std::vector<std::unique_ptr<SequenceSub>>& subs() const {
    return subs_;
  }
  void Clear() { subs_.clear(); }

 private:
  std::string Url(int node, const std::vector<std::string>& topics) const;

  event_base* base_;
  std::vector<int> ports_;
  std::vector<std::string> topics_;
  std::vector<std::unique_ptr<SequenceSub>> subs_;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_FAILOVER_SUPPORT_H_
