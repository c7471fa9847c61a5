// The Kafka link behind evsse::kafka::Attach, constructible without a Hub
// (tests drive it with their own BackendSink). Loop thread only.
#ifndef EVSSE_KAFKA_LINK_H_
#define EVSSE_KAFKA_LINK_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "evsse/ext/backend.h"
#include "evsse/kafka.h"
#include "evsse/status.h"

struct event_base;

namespace evsse::kafka {

// BackendLink is a Link that is also the Hub's Backend. Every PublishDone
// and FetchDone fires exactly once, on the loop thread, never inside the
// call that took it; the destructor fails what is pending with kCancelled.
class BackendLink : public Link, public Backend {
 public:
  // Start connects and reports to `sink` (not owned; until HubGone).
  virtual void Start(BackendSink* sink) = 0;
};

struct LinkEnv {
  event_base* base = nullptr;  // not owned; outlives the link
  // detach, when set, runs first thing in the link's destructor.
  std::function<void()> detach;
  // log receives one line per state change. May be empty.
  std::function<void(std::string_view line)> log;
  // accept says whether a record may become an event (type and data valid
  // on the wire); a refused one is skipped and counted. Attach makes it the
  // Hub's own checks (evsse/wire.h). Empty: everything is accepted.
  std::function<bool(std::string_view type, std::string_view data)> accept;
};

Result<std::unique_ptr<BackendLink>> MakeLink(LinkEnv env,
                                              KafkaOptions options);

}  // namespace evsse::kafka

#endif  // EVSSE_KAFKA_LINK_H_
