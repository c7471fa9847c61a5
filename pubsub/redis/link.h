// The Redis link behind evsse::redis::Attach, constructible without a Hub
// (tests drive it with their own BackendSink). Loop thread only.
#ifndef EVSSE_REDIS_LINK_H_
#define EVSSE_REDIS_LINK_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "evsse/ext/backend.h"
#include "evsse/redis.h"
#include "evsse/status.h"

struct event_base;

namespace evsse::redis {

// BackendLink is a Link that is also the Hub's Backend.
//
// Callbacks: every PublishDone and FetchDone fires exactly once, on the
// loop thread, never inside the Publish or Fetch call that took it:
// failures for a link that is down (kUnavailable) or that was destroyed
// (kCancelled, from the destructor) are deferred to the loop.
// Re-entrancy: the BackendSink may call Publish, Fetch, Watch and Unwatch
// from inside its calls; it must not destroy the link there.
class BackendLink : public Link, public Backend {
 public:
  // Start connects and reports to `sink` (not owned; until HubGone)
  // from then on. Once.
  virtual void Start(BackendSink* sink) = 0;
};

struct LinkEnv {
  event_base* base = nullptr;  // not owned; outlives the link
  // detach, when set, runs first thing in the link's destructor (Attach
  // makes it Hub::AttachBackend(nullptr)).
  std::function<void()> detach;
  // log receives one line per state change (connected, link down and why,
  // AUTH failures). May be empty.
  std::function<void(std::string_view line)> log;
  // The stream length when RedisOptions::max_events is 0.
  size_t default_max_events = 1000;
  // The keys' time to live when RedisOptions::stream_ttl is 0 (0: none).
  Millis default_stream_ttl{0};
  // Redis Cluster (cluster/cluster_link.cc): the link is one shard's engine.
  // Its address is the shard's primary; the publish script broadcasts with
  // SPUBLISH and topics are followed with SSUBSCRIBE (one channel per
  // request: a request's channels must share a slot) on evsse's own
  // subscriber connection (cluster::PushConn); a publish batch holds one
  // slot's events (a script's keys must share a slot).
  bool sharded = false;
  // misrouted (sharded): a watched topic's slot is not served here (its
  // SSUBSCRIBE or sync was answered MOVED / ASK / TRYAGAIN, or the server
  // pushed `sunsubscribe`: the slot moved away). The topic stays watched
  // but not subscribed until the owner re-homes it.
  std::function<void(const std::string& topic, const std::string& why)>
      misrouted;
  // down (sharded): the link went down (error), or failed to connect.
  std::function<void(const std::string& error)> down;
};

// MakeLink checks `options` and makes an unstarted link.
Result<std::unique_ptr<BackendLink>> MakeLink(LinkEnv env,
                                              RedisOptions options);

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_LINK_H_
