// Test support: a private redis-server per test. It runs in its own temp
// dir, on a unix socket (or a free TCP port on 127.0.0.1), persists nothing
// unless asked, and is stopped by pid (never by name): tests never touch a
// Redis they did not start, nor assume port 6379. Creating one makes the
// process ignore SIGPIPE, as an application using evsse::redis must.
#ifndef EVSSE_TESTS_REDIS_FIXTURE_H_
#define EVSSE_TESTS_REDIS_FIXTURE_H_

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "resp.h"

namespace evsse::testing {

class RedisServer {
 public:
  struct Options {
    bool tcp = false;      // a free port on 127.0.0.1 instead of a socket
    std::string password;  // --requirepass
    std::vector<std::string> extra_args;  // more redis-server arguments
    int port = 0;  // with tcp: this port instead of a free one
  };

  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options);
  ~RedisServer();  // Stop, then removes the dir
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Start spawns redis-server (posix_spawnp) and waits until it answers
  // PING (a socket file alone is no proof that it listens). Restarts reuse
  // the dir, socket path and port, and load dump.rdb if Stop saved one.
  ::testing::AssertionResult Start();
  // Stop resumes a paused server, SIGTERMs it and waits for it. With
  // `save`, a SAVE first keeps the data for the next Start.
  void Stop(bool save = false);
  ::testing::AssertionResult Restart(bool save = false);
  // Kill: SIGKILL (a crash: nothing saved) and reap it; Start brings it
  // back on the same port, empty.
  void Kill();
  // Pause and Resume: SIGSTOP / SIGCONT (a hung server).
  void Pause();
  void Resume();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // address: "unix:<dir>/redis.sock" or "127.0.0.1:<port>".
  std::string address() const;

  // Command runs one command on a new synchronous connection (AUTH first
  // when there is a password); nullptr when the server cannot be reached.
  ReplyPtr Command(const std::vector<std::string>& argv) const;

 private:
  redisContext* ConnectSync(int timeout_ms) const;
  std::string LogTail() const;

  Options options_;
  std::string dir_;
  std::string socket_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

// WrittenEpochs tells, for each entry of a topic's stream, the epoch it
// was written in (what its subscribers got live): the stream's epoch, or,
// for an entry up to the end of a fork (a failover or a restart from
// files; see pubsub/redis/publish.lua), the older epoch that fork ended.
class WrittenEpochs {
 public:
  WrittenEpochs(const RedisServer& redis, const std::string& topic);
  // Of returns the epoch of the entry with the stream id `id` ("ms-seq").
  std::string Of(const std::string& id) const;

 private:
  std::string current_;
  // The forks, oldest first: {epoch, end as {ms, seq}}.
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> ends_;
};

// FreeTcpPort returns a port on 127.0.0.1 that nothing listened on a moment
// ago (bind to port 0 and read it back).
int FreeTcpPort();
// FreeClusterPort returns a port below 55536 that is free together with the
// port 10000 above it (a cluster node's bus port), avoiding `taken`.
int FreeClusterPort(const std::vector<int>& taken = {});

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_REDIS_FIXTURE_H_
