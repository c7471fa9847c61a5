// Attach: the public entry of evsse::kafka, a BackendLink plugged into a Hub.
#include <memory>
#include <utility>

#include "../common/attach_link.h"
#include "evsse/hub.h"
#include "evsse/kafka.h"
#include "evsse/wire.h"
#include "link.h"

namespace evsse::kafka {

Result<std::unique_ptr<Link>> Attach(Hub* hub, KafkaOptions options) {
  if (hub == nullptr) return InvalidArgumentError("kafka: Attach needs a Hub");
  LinkEnv env = internal::HubLinkEnv<LinkEnv>(hub);
  // The Hub's own rules for what may go on the wire.
  env.accept = [](std::string_view type, std::string_view data) {
    return ValidateEventType(type).ok() && IsValidUtf8(data);
  };
  return internal::PlugIn<Link>(hub,
                                MakeLink(std::move(env), std::move(options)));
}

}  // namespace evsse::kafka
