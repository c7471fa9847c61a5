// Attach: the public entry of evsse::kafka, a BackendLink plugged into a Hub.
#include <memory>
#include <utility>

#include "evsse/hub.h"
#include "evsse/kafka.h"
#include "evsse/options.h"
#include "evsse/wire.h"
#include "link.h"

namespace evsse::kafka {

Result<std::unique_ptr<Link>> Attach(Hub* hub, KafkaOptions options) {
  if (hub == nullptr) return InvalidArgumentError("kafka: Attach needs a Hub");
  LinkEnv env;
  env.base = hub->base();
  env.detach = [hub] { (void)hub->AttachBackend(nullptr); };
  if (LogHook log = hub->options().log) {
    env.log = [log](std::string_view line) {
      log(LogLevel::kWarning, std::string(line));
    };
  }
  // The Hub's own rules for what may go on the wire.
  env.accept = [](std::string_view type, std::string_view data) {
    return ValidateEventType(type).ok() && IsValidUtf8(data);
  };
  Result<std::unique_ptr<BackendLink>> made =
      MakeLink(std::move(env), std::move(options));
  if (!made.ok()) return made.status();
  std::unique_ptr<BackendLink> link = std::move(made).value();
  BackendSink* sink = hub->AttachBackend(link.get());
  link->Start(sink);
  return std::unique_ptr<Link>(std::move(link));
}

}  // namespace evsse::kafka
