// What Attach does the same way for every store link (evsse::redis,
// evsse::kafka; header-only, compiled into each store's library): the link's
// environment from the Hub, and plugging the made link into it.
#ifndef EVSSE_COMMON_ATTACH_LINK_H_
#define EVSSE_COMMON_ATTACH_LINK_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "evsse/hub.h"
#include "evsse/options.h"
#include "evsse/status.h"

namespace evsse::internal {

// HubLinkEnv: a store's LinkEnv with what the Hub gives every link: its
// loop, a detach that unplugs the store from the Hub, and the Hub's log hook
// (a link's lines are warnings).
template <class Env>
Env HubLinkEnv(Hub* hub) {
  Env env;
  env.base = hub->base();
  env.detach = [hub] { (void)hub->AttachBackend(nullptr); };
  if (LogHook log = hub->options().log) {
    env.log = [log](std::string_view line) {
      log(LogLevel::kWarning, std::string(line));
    };
  }
  return env;
}

// PlugIn: a made link becomes the Hub's Backend and starts reporting to it;
// the caller gets it as the store's Link.
template <class Link, class BackendLink>
Result<std::unique_ptr<Link>> PlugIn(
    Hub* hub, Result<std::unique_ptr<BackendLink>> made) {
  if (!made.ok()) return made.status();
  std::unique_ptr<BackendLink> link = std::move(made).value();
  BackendSink* sink = hub->AttachBackend(link.get());
  link->Start(sink);
  return std::unique_ptr<Link>(std::move(link));
}

}  // namespace evsse::internal

#endif  // EVSSE_COMMON_ATTACH_LINK_H_
