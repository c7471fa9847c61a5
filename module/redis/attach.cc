// Attach: the public entry of evsse::redis, a BackendLink plugged into a Hub.
#include <memory>
#include <utility>

#include "../common/attach_link.h"
#include "evsse/hub.h"
#include "evsse/redis.h"
#include "link.h"

namespace evsse::redis {

Result<std::unique_ptr<Link>> Attach(Hub* hub, RedisOptions options) {
  if (hub == nullptr) return InvalidArgumentError("redis: Attach needs a Hub");
  LinkEnv env = internal::HubLinkEnv<LinkEnv>(hub);
  // A max_events of 0 means the Hub's own history length.
  env.default_max_events = hub->options().history_max_events;
  // A stream_ttl of 0 means the Hub's history age.
  env.default_stream_ttl = hub->options().history_max_age;
  return internal::PlugIn<Link>(hub,
                                MakeLink(std::move(env), std::move(options)));
}

}  // namespace evsse::redis
