// ClusterLink: the Redis link in Redis Cluster mode (RedisOptions::
// cluster_seeds). A router behind the same BackendLink interface as the
// single-server link, which owns one engine per shard: a LinkImpl in
// sharded mode (link.h: LinkEnv::sharded) whose address is the shard's
// primary (its publish script uses SPUBLISH, its subscriber connection is a
// PushConn doing SSUBSCRIBE).
//
//  - The slot map comes from CLUSTER SLOTS, asked of the seeds and of every
//    node the last map named, in turn. It is asked again when a shard's
//    engine goes down (and every kRefreshRetry while one is down: a failed
//    primary is replaced by its replica once the cluster fails it over),
//    when a command is answered MOVED, and when a shard says it no longer
//    serves a watched topic (its SSUBSCRIBE or sync was redirected, or the
//    server pushed `sunsubscribe`: the slot moved).
//  - Publish, Fetch, Watch and Unwatch go to the engine of the topic's
//    slot, KeySlot("<prefix>{<topic>}:s"). The engine batches one slot's
//    events per script call. A MOVED answer updates the map and the command
//    goes to the named primary (whose engine, when new, is waited for);
//    ASK and TRYAGAIN (a slot being migrated) are retried on the same
//    primary after a doubling delay; past kMaxRedirects the caller gets
//    kUnavailable (HTTP 503). A publish answered MOVED/ASK/TRYAGAIN was not
//    run, so it is safe to send again.
//  - When a watched topic's slot has a new owner (a failover promoted a
//    replica, or a migration), the topic is re-homed: unwatched on the old
//    engine, and on the new one subscribed and back-filled from the Hub's
//    last position (LinkImpl::Resume: the path of a reconnect), so that its
//    subscribers miss nothing and get nothing twice. An engine whose
//    primary serves no slot any more is closed.
//  - up: the map is known and every shard's engine is up. wait_replicas
//    applies per shard (each engine WAITs on its own primary).
//
// Loop thread only.
#ifndef EVSSE_REDIS_CLUSTER_CLUSTER_LINK_H_
#define EVSSE_REDIS_CLUSTER_CLUSTER_LINK_H_

#include <memory>
#include <vector>

#include "../address.h"
#include "../link.h"

namespace evsse::redis::cluster {

// MakeClusterLink: `options` checked by MakeLink, `seeds` parsed from
// options.cluster_seeds (host:port each).
std::unique_ptr<BackendLink> MakeClusterLink(LinkEnv env, RedisOptions options,
                                             std::vector<Address> seeds);

}  // namespace evsse::redis::cluster

#endif  // EVSSE_REDIS_CLUSTER_CLUSTER_LINK_H_
