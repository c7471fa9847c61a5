// Attach: the public entry of evsse::redis, a BackendLink plugged into a Hub.
#include <memory>
#include <utility>

#include "evsse/hub.h"
#include "evsse/options.h"
#include "evsse/redis.h"
#include "link.h"

namespace evsse::redis {

Result<std::unique_ptr<Link>> Attach(Hub* hub, RedisOptions options) {
  if (hub == nullptr) return InvalidArgumentError("redis: Attach needs a Hub");
  LinkEnv env;
  env.base = hub->base();
  env.detach = [hub] { (void)hub->AttachBackend(nullptr); };
  // A max_events of 0 means the Hub's own history length.
  env.default_max_events = hub->options().history_max_events;
  // A stream_ttl of 0 means the Hub's history age.
  env.default_stream_ttl = hub->options().history_max_age;
  if (LogHook log = hub->options().log) {
    env.log = [log](std::string_view line) {
      log(LogLevel::kWarning, std::string(line));
    };
  }
  Result<std::unique_ptr<BackendLink>> made =
      MakeLink(std::move(env), std::move(options));
  if (!made.ok()) return made.status();
  std::unique_ptr<BackendLink> link = std::move(made).value();
  BackendSink* sink = hub->AttachBackend(link.get());
  link->Start(sink);
  return std::unique_ptr<Link>(std::move(link));
}

}  // namespace evsse::redis
