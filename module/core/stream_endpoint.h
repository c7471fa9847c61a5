// StreamEndpoint: a mounted subscribe endpoint (stream_endpoint.cc). Loop
// thread only.
#ifndef EVSSE_CORE_STREAM_ENDPOINT_H_
#define EVSSE_CORE_STREAM_ENDPOINT_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "evsse/ext/exchange.h"
#include "evsse/options.h"
#include "lists.h"
#include "request.h"
#include "session.h"

namespace evsse::internal {

class HubImpl;

class StreamEndpoint final : public Handler {
 public:
  StreamEndpoint(HubImpl* hub, StreamOptions options);
  void Handle(Exchange* exchange) override;

  HubImpl* hub() const { return hub_; }
  const StreamOptions& options() const { return options_; }
  DeadlineList<Session, HeartbeatTag>& heartbeats() { return heartbeats_; }
  DeadlineList<Session, StallTag>& stalls() { return stalls_; }
  // JitteredRetry returns retry + uniform(0, retry_jitter) in ms.
  uint64_t JitteredRetry();
  int64_t JitteredLifetime();
  // Shed answers a request refused by a limit or while draining.
  void Shed(Exchange* exchange, const char* reason);
  // AddCommonHeaders adds the CORS headers for `origin` (if allowed).
  void AddCorsHeaders(Exchange* exchange, const char* origin);

 private:
  class Expanding;
  // Expanded continues a request once the backend expanded its topics;
  // Admit subscribes it (or sheds it).
  void Expanded(Exchange* exchange, SubscribeRequest req,
                Result<std::vector<std::vector<std::string>>> expanded);
  void Admit(Exchange* exchange, SubscribeRequest req);
  bool CheckCors(Exchange* exchange, const char** origin);
  void Preflight(Exchange* exchange);
  void Reject(Exchange* exchange, int status, const char* reason,
              const std::string& message);

  HubImpl* hub_;
  StreamOptions options_;
  DeadlineList<Session, HeartbeatTag> heartbeats_;
  DeadlineList<Session, StallTag> stalls_;
  std::minstd_rand rng_;
};

}  // namespace evsse::internal

#endif  // EVSSE_CORE_STREAM_ENDPOINT_H_
