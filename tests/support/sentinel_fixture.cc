#include "sentinel_fixture.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace evsse::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string TempDir() {
  char templ[] = "/tmp/evsse-sentinel-XXXXXX";
  return mkdtemp(templ) != nullptr ? templ : "";
}

std::string FirstWord(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
      r->element[0]->type != REDIS_REPLY_STRING)
    return "";
  return std::string(r->element[0]->str, r->element[0]->len);
}

}  // namespace

SentinelGroup::SentinelGroup(Options options) : options_(std::move(options)) {
  dir_ = TempDir();
}

SentinelGroup::~SentinelGroup() {
  for (pid_t& pid : sentinel_pids_) {
    if (pid <= 0) continue;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  servers_.clear();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string SentinelGroup::Flag() const {
  std::string out = options_.master + "@";
  for (size_t k = 0; k < sentinel_ports_.size(); ++k)
    out +=
        (k ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(sentinel_ports_[k]);
  return out;
}

std::vector<std::string> SentinelGroup::SentinelAddresses() const {
  std::vector<std::string> out;
  for (int p : sentinel_ports_) out.push_back("127.0.0.1:" + std::to_string(p));
  return out;
}

::testing::AssertionResult SentinelGroup::Start() {
  if (dir_.empty()) return ::testing::AssertionFailure() << "no temp dir";
  RedisServer::Options po;
  po.tcp = true;
  servers_.push_back(std::make_unique<RedisServer>(po));
  if (auto r = servers_[0]->Start(); !r) return r;
  RedisServer::Options ro;
  ro.tcp = true;
  ro.extra_args = {"--replicaof", "127.0.0.1",
                   std::to_string(servers_[0]->port())};
  servers_.push_back(std::make_unique<RedisServer>(ro));
  if (auto r = servers_[1]->Start(); !r) return r;
  if (auto r = WaitRole(1, "slave", std::chrono::seconds(15)); !r) return r;
  for (int k = 0; k < 3; ++k) sentinel_ports_.push_back(FreeTcpPort());
  for (int k = 0; k < 3; ++k)
    if (auto r = StartSentinel(k); !r) return r;
  // Sentinels find replicas through the primary's INFO and each other
  // through hello messages (every publish-period: 2 s, 200 ms sped up).
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    bool ready = true;
    for (int k = 0; k < 3 && ready; ++k) {
      ReplyPtr replicas = Sentinel(k, {"SENTINEL", "REPLICAS", master()});
      ReplyPtr others = Sentinel(k, {"SENTINEL", "SENTINELS", master()});
      ready = replicas && replicas->type == REDIS_REPLY_ARRAY &&
              replicas->elements >= 1 && others &&
              others->type == REDIS_REPLY_ARRAY && others->elements >= 2;
    }
    if (ready) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ::testing::AssertionFailure()
         << "the sentinels did not find the replica and each other in 30 s";
}

::testing::AssertionResult SentinelGroup::StartSentinel(int k) {
  int port = sentinel_ports_[k];
  std::string conf = dir_ + "/sentinel-" + std::to_string(k) + ".conf";
  {
    std::ofstream out(conf);
    out << "port " << port << "\nbind 127.0.0.1\n"
        << "dir " << dir_ << "\n"
        << "logfile " << dir_ << "/sentinel-" << k << ".log\n"
        << "sentinel monitor " << master() << " 127.0.0.1 "
        << servers_[0]->port() << " 2\n"
        << "sentinel down-after-milliseconds " << master() << " "
        << options_.down_after_ms << "\n"
        << "sentinel failover-timeout " << master() << " "
        << options_.failover_timeout_ms << "\n"
        << "sentinel parallel-syncs " << master() << " 1\n";
  }
  std::vector<std::string> args{"redis-sentinel", conf};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string out = dir_ + "/sentinel-" + std::to_string(k) + ".out";
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc =
      posix_spawnp(&pid, "redis-sentinel", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return ::testing::AssertionFailure()
           << "posix_spawnp(redis-sentinel): " << strerror(rc);
  sentinel_pids_.push_back(pid);
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    ReplyPtr r = Sentinel(k, {"PING"});
    if (r && r->type == REDIS_REPLY_STATUS) return SpeedUp(k);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ::testing::AssertionFailure() << "sentinel " << k << " did not start";
}

::testing::AssertionResult SentinelGroup::RestartAsReplica(int i, int of) {
  int port = servers_[i]->port();
  servers_[i]->Kill();
  RedisServer::Options o;
  o.tcp = true;
  o.port = port;
  o.extra_args = {"--replicaof", "127.0.0.1",
                  std::to_string(servers_[of]->port())};
  servers_[i] = std::make_unique<RedisServer>(o);
  return servers_[i]->Start();
}

// SpeedUp: Sentinel's hello and INFO periods, ten times shorter (Redis
// 7.0's SENTINEL DEBUG; a config file cannot set them). With the defaults a
// sentinel learns of the others through hello messages every 2 s, asks a
// replica for INFO every 10 s and waits 4 hello periods (8 s) before it
// turns a returning old primary into a replica: most of a test's time.
::testing::AssertionResult SentinelGroup::SpeedUp(int k) {
  if (!options_.fast_periods) return ::testing::AssertionSuccess();
  ReplyPtr r = Sentinel(
      k, {"SENTINEL", "DEBUG", "info-period", "1000", "publish-period", "200"});
  if (r && r->type == REDIS_REPLY_STATUS) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "sentinel " << k << ": SENTINEL DEBUG refused ("
         << (r && r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                               : std::string("no reply"))
         << ")";
}

ReplyPtr SentinelGroup::Sentinel(int k,
                                 const std::vector<std::string>& argv) const {
  timeval tv{1, 0};
  redisContext* c =
      redisConnectWithTimeout("127.0.0.1", sentinel_ports_[k], tv);
  if (c == nullptr) return nullptr;
  if (c->err != 0) {
    redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, tv);
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

int SentinelGroup::PrimaryIndex() const {
  for (int k = 0; k < 3; ++k) {
    ReplyPtr r = Sentinel(k, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", master()});
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) continue;
    int port = std::atoi(r->element[1]->str);
    for (size_t i = 0; i < servers_.size(); ++i)
      if (servers_[i]->port() == port) return static_cast<int>(i);
  }
  return -1;
}

std::string SentinelGroup::Role(int i) const {
  if (!servers_[i]->running()) return "";
  ReplyPtr r = servers_[i]->Command({"ROLE"});
  return FirstWord(r.get());
}

::testing::AssertionResult SentinelGroup::WaitPrimary(
    int i, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (PrimaryIndex() == i && Role(i) == "master")
      return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ::testing::AssertionFailure()
         << "server " << i << " did not become the primary";
}

::testing::AssertionResult SentinelGroup::WaitRole(
    int i, const std::string& role, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (Role(i) == role) {
      if (role != "slave") return ::testing::AssertionSuccess();
      ReplyPtr r = servers_[i]->Command({"INFO", "replication"});
      if (r && r->type == REDIS_REPLY_STRING &&
          std::string(r->str, r->len).find("master_link_status:up") !=
              std::string::npos)
        return ::testing::AssertionSuccess();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ::testing::AssertionFailure()
         << "server " << i << " is not " << role << " (ROLE " << Role(i) << ")";
}

}  // namespace evsse::testing
