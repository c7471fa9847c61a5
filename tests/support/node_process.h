// Test support: evsse nodes as child processes (examples/evhttp_hello
// --redis), stopped by pid, and a blocking HTTP POST usable from any thread.
#ifndef EVSSE_TESTS_NODE_PROCESS_H_
#define EVSSE_TESTS_NODE_PROCESS_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace evsse::testing {

// PostRequest: a "Connection: close" HTTP/1.1 POST of `body` to `target`.
std::string PostRequest(const std::string& target, const std::string& body);

// IdOf extracts the id of a {"id":"..."} publish answer ("" if none).
std::string IdOf(const std::string& body);

struct PostReply {
  int status = 0;  // 0: no answer
  std::string body;
  // The whole request reached the socket. With no answer (status 0) the
  // server may have acted on it: its outcome is unknown. Not sent (e.g.
  // connection refused): the server never saw it.
  bool sent = false;
};

// BlockingPost publishes over HTTP to a server in another process (any
// thread; bounded by `timeout_ms` socket timeouts).
PostReply BlockingPost(int port, const std::string& target,
                       const std::string& body, int timeout_ms = 5000);

// NodeProcess: one evhttp_hello --redis child (the binary given), stopped
// by pid, its output appended to `log_path`.
class NodeProcess {
 public:
  NodeProcess(std::string binary, std::string log_path)
      : binary_(std::move(binary)), log_(std::move(log_path)) {}
  ~NodeProcess() { Kill(); }
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Start spawns it on `port` and waits (15 s at most) until its publish
  // endpoint answers 200: listening, and its Redis link connected.
  ::testing::AssertionResult Start(int port, const std::string& redis);
  // StartWith: the same with other Redis flags (e.g. --redis-sentinel
  // NAME@HOST:PORT,... --redis-wait-replicas 1).
  ::testing::AssertionResult StartWith(
      int port, const std::vector<std::string>& redis_args);
  // Kill: SIGKILL (a crash), and reap it.
  void Kill();
  // Stop: SIGTERM (drain), then SIGKILL after 10 s. Returns the wait status
  // (-1 when it was not running).
  int Stop();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Log returns the last 3000 bytes of its output.
  std::string Log() const;

 private:
  std::string binary_;
  std::string log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_NODE_PROCESS_H_
