#include "redis_cluster.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "spawn_process.h"

namespace evsse::testing {
namespace {

using Clock = std::chrono::steady_clock;

// RunRedisCli runs redis-cli with `args`, its output in `log`; true when it
// exits 0.
bool RunRedisCli(const std::vector<std::string>& args, const std::string& log,
                 std::string* error) {
  std::vector<std::string> all{"redis-cli"};
  all.insert(all.end(), args.begin(), args.end());
  std::remove(log.c_str());
  pid_t pid = Spawn(all, log, error);
  if (pid < 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  *error = "redis-cli --cluster create failed; see " + log;
  return false;
}

// SlotOwners: slot range start → owner port, from CLUSTER SLOTS on `node`.
bool SlotOwners(const RedisServer& node, std::map<long long, long long>* out,
                long long* covered, size_t* fewest_replicas) {
  ReplyPtr r = node.Command({"CLUSTER", "SLOTS"});
  if (!r || r->type != REDIS_REPLY_ARRAY) return false;
  *covered = 0;
  *fewest_replicas = SIZE_MAX;
  for (size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) return false;
    long long first = e->element[0]->integer, last = e->element[1]->integer;
    const redisReply* primary = e->element[2];
    if (primary->type != REDIS_REPLY_ARRAY || primary->elements < 2) {
      return false;
    }
    (*out)[first] = primary->element[1]->integer;
    *fewest_replicas = std::min(*fewest_replicas, e->elements - 3);
    *covered += last - first + 1;
  }
  return true;
}

}  // namespace

::testing::AssertionResult RedisCluster::Start(int node_timeout_ms) {
  std::vector<std::string> addresses;
  std::vector<int> ports;
  for (int i = 0; i < 6; ++i) {
    RedisServer::Options o;
    o.tcp = true;
    // A node also listens on its port + 10000 (the cluster bus).
    o.port = FreeClusterPort(ports);
    if (o.port == 0) return ::testing::AssertionFailure() << "no free port";
    ports.push_back(o.port);
    o.extra_args = {"--cluster-enabled", "yes", "--cluster-config-file",
                    "nodes.conf", "--cluster-node-timeout",
                    std::to_string(node_timeout_ms),
                    // Replicas sync at once (the default waits 5 s for more).
                    "--repl-diskless-sync-delay", "0",
                    // CLUSTER SLOTS lists a replica once its offset is not 0:
                    // the primary's first ping (every 10 s by default).
                    "--repl-ping-replica-period", "1"};
    nodes_.push_back(std::make_unique<RedisServer>(o));
    auto started = nodes_.back()->Start();
    if (!started) return started;
    addresses.push_back("127.0.0.1:" + std::to_string(nodes_.back()->port()));
  }
  std::vector<std::string> args{"--cluster", "create"};
  args.insert(args.end(), addresses.begin(), addresses.end());
  args.insert(args.end(), {"--cluster-replicas", "1", "--cluster-yes"});
  std::string error;
  if (!RunRedisCli(args, nodes_[0]->dir() + "/cluster-create.log", &error)) {
    return ::testing::AssertionFailure() << error;
  }
  return WaitHealthy();
}

::testing::AssertionResult RedisCluster::WaitHealthy(int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last = "no node answered";
  while (Clock::now() < deadline) {
    bool ok = true;
    std::map<long long, long long> agreed;
    for (auto& node : nodes_) {
      if (!node->running()) continue;
      ReplyPtr info = node->Command({"CLUSTER", "INFO"});
      if (!info || info->type != REDIS_REPLY_STRING ||
          std::string(info->str, info->len).find("cluster_state:ok") ==
              std::string::npos) {
        ok = false;
        last = "node " + std::to_string(node->port()) + " not ok";
        break;
      }
      std::map<long long, long long> owners;
      long long covered = 0;
      size_t replicas = 0;
      if (!SlotOwners(*node, &owners, &covered, &replicas) ||
          covered != 16384) {
        ok = false;
        last = "node " + std::to_string(node->port()) + " covers " +
               std::to_string(covered) + " slots";
        break;
      }
      if (replicas < static_cast<size_t>(replicas_)) {
        ok = false;
        last = "node " + std::to_string(node->port()) +
               " lists a shard without its replica";
        break;
      }
      if (agreed.empty()) {
        agreed = owners;
      } else if (agreed != owners) {
        ok = false;
        last = "nodes disagree on the slot map";
        break;
      }
    }
    if (ok) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ::testing::AssertionFailure() << "cluster not healthy: " << last;
}

std::string RedisCluster::seeds() const {
  std::string out;
  for (const auto& node : nodes_) {
    if (!out.empty()) out += ",";
    out += "127.0.0.1:" + std::to_string(node->port());
  }
  return out;
}

RedisServer* RedisCluster::NodeOnPort(int port) {
  for (auto& node : nodes_) {
    if (node->port() == port) return node.get();
  }
  return nullptr;
}

RedisServer* RedisCluster::PrimaryOf(int slot) {
  for (auto& node : nodes_) {
    if (!node->running()) continue;
    ReplyPtr r = node->Command({"CLUSTER", "SLOTS"});
    if (!r || r->type != REDIS_REPLY_ARRAY) continue;
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* e = r->element[i];
      if (e->element[0]->integer <= slot && slot <= e->element[1]->integer) {
        return NodeOnPort(static_cast<int>(e->element[2]->element[1]->integer));
      }
    }
    return nullptr;
  }
  return nullptr;
}

}  // namespace evsse::testing
