// evsse::redis: several evsse nodes behind a load balancer behave as one.
//
// Attach connects a Hub to Redis (hiredis async on the Hub's own
// event_base). From then on:
//  - Hub::Publish stores each event in the topic's Redis stream and
//    publishes it on the topic's channel, atomically (one Lua script); the
//    id a publisher gets back, and the id on the wire, is the stream id.
//  - Every node subscribes to the channels of the topics its clients
//    follow and delivers what arrives; a client resuming with Last-Event-ID
//    on any node is replayed from the stream (XRANGE), merged with live
//    events with no gap and no duplicate.
//  - When the link drops, connected subscribers keep being served; the node
//    reconnects with backoff and jitter, re-subscribes and back-fills every
//    active topic from its stream before going live again.
//  - Publishes while Redis is unreachable fail at once with kUnavailable
//    (never queued, never silently dropped).
//  - A cut that sends no FIN or RST (a partition, a firewall that forgot the
//    flow) is found by probing the subscription (RedisOptions::
//    probe_interval, probe_timeout) even on a node that publishes nothing:
//    the link then goes down and resyncs as after any drop.
//
// Keys (the topic in braces, so both keys of a topic share a Redis Cluster
// slot): <prefix>{<topic>}:s the stream, <prefix>{<topic>}:c the channel,
// <prefix>{<topic>}:e the stream's epoch, <prefix>{<topic>}:w the run_id of
// the server that last wrote it and <prefix>{<topic>}:f its failover forks
// (publish.lua: after a failover, ids the old primary handed out and lost
// give the gap event, and new ids sort above them).
//
// Threads: Attach, Detach and the Link belong to the Hub's loop thread.
//
// SIGPIPE must be ignored (signal(SIGPIPE, SIG_IGN)), as for evhttp:
// hiredis writes with write(2), and a Redis that dies with a command in
// flight would otherwise kill the process.
//
// Several nodes: start each with its own Hub on the same Redis (same
// key_prefix). Keys are hash-tagged per topic, so all keys of a topic live
// in one Redis Cluster slot: with RedisOptions::cluster_seeds the link
// spreads topics over a Redis Cluster's shards (see there).
#ifndef EVSSE_REDIS_H_
#define EVSSE_REDIS_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "evsse/export.h"
#include "evsse/ext/backend.h"
#include "evsse/millis.h"
#include "evsse/status.h"

namespace evsse {
class Hub;
}

namespace evsse::redis {

struct RedisOptions {
  // "host:port" (an IP literal or "localhost": hiredis resolves names with a
  // blocking call), or "unix:/path/to/redis.sock".
  std::string address = "127.0.0.1:6379";
  // Sentinel: when `sentinels` is not empty, `address` is ignored and the
  // primary of `sentinel_master` is found through the sentinels ("host:port"
  // each), asked in turn (one that is down or silent for connect_timeout is
  // skipped). The server they name must answer ROLE "master" before use.
  // The link follows +switch-master on a sentinel; on a switch, or a
  // READONLY / MASTERDOWN answer, it rediscovers the primary, reconnects,
  // re-subscribes and back-fills every followed topic, as after any drop.
  // sentinel_password: AUTH on the sentinels (their requirepass), when set;
  // `password` stays the data servers' own.
  std::string sentinel_master;
  std::vector<std::string> sentinels;
  std::string sentinel_password;
  // Redis Cluster: when `cluster_seeds` is not empty ("host:port" each, any
  // nodes of the cluster), `address` is ignored and the link routes each
  // topic to the primary of its slot (CRC16 of "{<topic>}"), with one
  // command connection and one sharded subscriber connection (SPUBLISH /
  // SSUBSCRIBE) per primary. The slot map (CLUSTER SLOTS, asked of the
  // seeds and of the nodes it names) is refreshed on MOVED / ASK, on a
  // shard's connection loss and when a server drops a subscription because
  // its slot moved; topics whose slot moved (a failover, a migration) are
  // re-subscribed on their new shard and back-filled from their streams.
  // Not with sentinels; `database` must be 0. wait_replicas applies to each
  // shard's primary.
  std::vector<std::string> cluster_seeds;
  std::string password;  // AUTH when not empty
  std::string username;  // AUTH username password (Redis 6 ACL) when set
  int database = 0;      // SELECT
  std::string key_prefix = "evsse:";
  // Stream retention: XADD MAXLEN ~ max_events (0: the Hub's
  // history_max_events) and, when max_age > 0, MINID ~ now - max_age.
  size_t max_events = 0;
  Millis max_age{0};
  // A topic's keys (stream and epoch) expire this long after its last
  // publish (PEXPIRE in the publish script), so per-order or per-user topics
  // do not grow Redis forever. 0: the Hub's history_max_age (the keys never
  // expire when that is 0 too). A client resuming after its topic expired
  // gets the gap event.
  Millis stream_ttl{0};
  Millis connect_timeout{2000};
  Millis command_timeout{5000};
  Millis reconnect_min{100};
  Millis reconnect_max{5000};
  // Liveness of the subscription. A Redis connection cut without a FIN or
  // RST (a firewall that forgot the flow, a partition) looks idle, not
  // dead: a node that publishes nothing would never notice that it stopped
  // receiving. So when the subscriber connection has heard nothing for
  // probe_interval, the link PUBLISHes a probe on a channel of its own
  // (<prefix>{probe}:<random id>) that its subscriber connection follows;
  // a probe not back within probe_timeout, with nothing else received
  // meanwhile (a probe queued behind a burst is waited for), or one that
  // reached no subscriber, takes the link down and through the usual
  // reconnect, re-subscribe and back-fill. probe_interval 0: no probes.
  Millis probe_interval{1000};
  Millis probe_timeout{3000};
  // TCP_USER_TIMEOUT on both TCP connections (which also carry keepalive):
  // unacknowledged bytes older than this make the kernel drop the
  // connection. 0: the kernel's default (about 15 minutes of retries).
  Millis tcp_user_timeout{10000};
  // Durable publishes. Redis replicates asynchronously: a primary that dies
  // right after a publish can take it with it. With wait_replicas N > 0, a
  // publish is acknowledged only once WAIT confirms that N replicas have
  // it; when fewer confirm within wait_timeout, the publisher gets kUnknown
  // (HTTP 504: stored on the primary, but it may be lost in a failover),
  // never a plain success. wait_timeout must be below command_timeout (and
  // probe_timeout: a WAIT holds the command connection). 0: no WAIT.
  int wait_replicas = 0;
  Millis wait_timeout{1000};
};

// ParseAddress checks an address string without connecting.
EVSSE_API Status ValidateAddress(const std::string& address);

class Link;

// Attach connects `hub` to Redis. It fails at once on a malformed address or
// options; connection and AUTH failures are reported through the Hub's log
// and stats (the link keeps retrying). Destroy the Link on the loop thread,
// before or after the Hub (a Hub that goes first detaches it: see
// module/README.md, "Lifetime").
EVSSE_API Result<std::unique_ptr<Link>> Attach(Hub* hub, RedisOptions options);

// LinkStats: the state of a node's Redis link.
// LinkStats: what every store reports (BackendStats: `up` is commands and
// subscriptions both connected; replay_fetches counts XRANGE round trips
// for resuming clients), and what only Redis has.
struct LinkStats : BackendStats {
  // delivering: connected, every followed topic synced, and (with probes)
  // the subscription answers. False from a missed probe until the link has
  // reconnected and back-filled: this is what evsse_redis_up reports.
  bool delivering = false;
  // The round trip of the last answered probe, from the PUBLISH to its
  // arrival on the subscriber connection (0 before the first answer).
  std::chrono::microseconds delivery_lag{0};
  // How long ago the last probe was answered; -1 when none was yet.
  Millis last_probe_age{-1};
  uint64_t probes_sent = 0;
  uint64_t probes_missed = 0;  // unanswered in time, or heard by no one
  // wait_replicas: publishes stored on the primary that fewer replicas than
  // asked confirmed in time (answered kUnknown).
  uint64_t unreplicated_publishes = 0;
  // Sentinel: the primary in use ("host:port", empty before the first
  // discovery), and how many times a switch (+switch-master, a server that
  // is no longer master, READONLY) sent the link back to the sentinels.
  // Cluster: the primaries in use, comma-separated, and how many times the
  // slot map changed owners (a failover, a migration).
  std::string primary;
  uint64_t failovers = 0;
  std::string last_error;
};

class EVSSE_API Link {
 public:
  virtual ~Link() = default;
  virtual LinkStats stats() const = 0;
};

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_H_
