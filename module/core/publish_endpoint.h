// PublishEndpoint: a mounted HTTP publish endpoint (publish_endpoint.cc).
// Loop thread only.
#ifndef EVSSE_CORE_PUBLISH_ENDPOINT_H_
#define EVSSE_CORE_PUBLISH_ENDPOINT_H_

#include "evsse/ext/exchange.h"
#include "evsse/options.h"

namespace evsse::internal {

class HubImpl;

class PublishEndpoint final : public Handler {
 public:
  PublishEndpoint(HubImpl* hub, PublishOptions options);
  void Handle(Exchange* exchange) override;

 private:
  HubImpl* hub_;
  PublishOptions options_;
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_PUBLISH_ENDPOINT_H_
