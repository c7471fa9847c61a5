#include "redis_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "spawn_process.h"

namespace evsse::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp";
  // Unix socket paths are short (108 bytes): keep the dir name short too.
  if (base.size() > 60) base = "/tmp";
  std::string templ = base + "/evsse-redis-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return buf.data();
}

}  // namespace

namespace {

// BindLoopback binds a TCP socket to 127.0.0.1:`port` (0: any free port)
// and returns the port bound, or 0; the socket is closed again.
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof sa;
  int bound = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    bound = ntohs(sa.sin_port);
  }
  close(fd);
  return bound;
}

}  // namespace

int FreeTcpPort() { return BindLoopback(0); }

int FreeClusterPort(const std::vector<int>& taken) {
  // Below the kernel's ephemeral range (32768..), so that no outgoing
  // connection takes it meanwhile; a random start keeps parallel tests
  // apart.
  static unsigned seed = static_cast<unsigned>(getpid()) * 2654435761u;
  for (int tries = 0; tries < 2000; ++tries) {
    seed = seed * 1103515245u + 12345u;
    int port = 20000 + static_cast<int>((seed >> 8) % 12000);
    bool clash = false;
    for (int t : taken)
      clash |= (t == port || t + 10000 == port || t == port + 10000);
    if (!clash && BindLoopback(port) == port &&
        BindLoopback(port + 10000) == port + 10000) {
      return port;
    }
  }
  return 0;
}

RedisServer::RedisServer(Options options) : options_(std::move(options)) {
  // hiredis 0.14 writes with write(2): a server that dies with a command
  // in flight raises SIGPIPE, which applications ignore (as for evhttp).
  std::signal(SIGPIPE, SIG_IGN);
  dir_ = MakeTempDir();
  socket_ = dir_ + "/redis.sock";
  if (options_.tcp) port_ = options_.port > 0 ? options_.port : FreeTcpPort();
}

RedisServer::~RedisServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string RedisServer::address() const {
  if (options_.tcp) return "127.0.0.1:" + std::to_string(port_);
  return "unix:" + socket_;
}

::testing::AssertionResult RedisServer::Start() {
  if (dir_.empty()) return ::testing::AssertionFailure() << "no temp dir";
  if (pid_ > 0) return ::testing::AssertionSuccess();
  std::vector<std::string> args{"redis-server"};
  if (options_.tcp) {
    args.insert(args.end(),
                {"--port", std::to_string(port_), "--bind", "127.0.0.1"});
  } else {
    args.insert(args.end(), {"--port", "0", "--unixsocket", socket_,
                             "--unixsocketperm", "700"});
  }
  args.insert(args.end(),
              {"--save", "", "--appendonly", "no", "--dir", dir_, "--daemonize",
               "no", "--logfile", dir_ + "/redis.log"});
  if (!options_.password.empty()) {
    args.insert(args.end(), {"--requirepass", options_.password});
  }
  args.insert(args.end(), options_.extra_args.begin(),
              options_.extra_args.end());
  std::string error;
  pid_t pid = Spawn(args, dir_ + "/stdout.log", &error);
  if (pid < 0) return ::testing::AssertionFailure() << error;
  pid_ = pid;
  paused_ = false;

  // Ready means it answers: PONG, or NOAUTH when it wants a password.
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "redis-server exited at start; log:\n"
             << LogTail();
    }
    if (redisContext* c = ConnectSync(200)) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      bool ok = r != nullptr &&
                ((r->type == REDIS_REPLY_STATUS &&
                  std::string(r->str, r->len) == "PONG") ||
                 (r->type == REDIS_REPLY_ERROR &&
                  std::string(r->str, r->len).rfind("NOAUTH", 0) == 0));
      if (r != nullptr) freeReplyObject(r);
      redisFree(c);
      if (ok) return ::testing::AssertionSuccess();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Stop();
  return ::testing::AssertionFailure()
         << "redis-server did not answer PING; log:\n"
         << LogTail();
}

void RedisServer::Stop(bool save) {
  if (pid_ <= 0) return;
  if (paused_) Resume();
  if (save) {
    ReplyPtr r = Command({"SAVE"});
    EXPECT_TRUE(r != nullptr && r->type == REDIS_REPLY_STATUS) << "SAVE failed";
  }
  kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
  // A stale socket file would make the next Start's readiness probe lie.
  if (!options_.tcp) unlink(socket_.c_str());
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  paused_ = false;
  if (!options_.tcp) unlink(socket_.c_str());
}

::testing::AssertionResult RedisServer::Restart(bool save) {
  Stop(save);
  return Start();
}

void RedisServer::Pause() {
  if (pid_ > 0 && !paused_) {
    kill(pid_, SIGSTOP);
    paused_ = true;
  }
}

void RedisServer::Resume() {
  if (pid_ > 0 && paused_) {
    kill(pid_, SIGCONT);
    paused_ = false;
  }
}

redisContext* RedisServer::ConnectSync(int timeout_ms) const {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext* c = options_.tcp
                        ? redisConnectWithTimeout("127.0.0.1", port_, tv)
                        : redisConnectUnixWithTimeout(socket_.c_str(), tv);
  if (c == nullptr) return nullptr;
  if (c->err != 0) {
    redisFree(c);
    return nullptr;
  }
  timeval io{5, 0};
  redisSetTimeout(c, io);
  return c;
}

ReplyPtr RedisServer::Command(const std::vector<std::string>& argv) const {
  if (pid_ <= 0) return nullptr;
  redisContext* c = ConnectSync(2000);
  if (c == nullptr) return nullptr;
  if (!options_.password.empty()) {
    auto* r = static_cast<redisReply*>(redisCommand(
        c, "AUTH %b", options_.password.data(), options_.password.size()));
    if (r != nullptr) freeReplyObject(r);
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(args.size()), args.data(), lens.data()));
  redisFree(c);
  return ReplyPtr(r);
}

std::string RedisServer::LogTail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  std::ifstream out(dir_ + "/stdout.log");
  std::stringstream so;
  so << out.rdbuf();
  s += so.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

namespace {

bool StreamId(const std::string& id, std::pair<uint64_t, uint64_t>* out) {
  char dash = 0;
  std::istringstream in(id);
  return static_cast<bool>(in >> out->first >> dash >> out->second) &&
         dash == '-';
}

}  // namespace

WrittenEpochs::WrittenEpochs(const RedisServer& redis,
                             const std::string& topic) {
  ReplyPtr epoch = redis.Command({"GET", "evsse:{" + topic + "}:e"});
  if (epoch && epoch->type == REDIS_REPLY_STRING)
    current_.assign(epoch->str, epoch->len);
  ReplyPtr forks =
      redis.Command({"LRANGE", "evsse:{" + topic + "}:f", "0", "-1"});
  if (!forks || forks->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = forks->elements; i-- > 0;) {
    std::string f(forks->element[i]->str, forks->element[i]->len);
    size_t sp = f.find(' ');
    std::pair<uint64_t, uint64_t> end;
    if (sp != std::string::npos && StreamId(f.substr(sp + 1), &end))
      ends_.push_back({f.substr(0, sp), end});
  }
}

std::string WrittenEpochs::Of(const std::string& id) const {
  std::pair<uint64_t, uint64_t> at;
  if (!StreamId(id, &at)) return current_;
  for (const auto& [epoch, end] : ends_)
    if (at <= end) return epoch;
  return current_;
}

}  // namespace evsse::testing
