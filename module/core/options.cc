// The one validator of each options struct (options.h).
#include <string>

#include "evsse/options.h"
#include "evsse/wire.h"
#include "request.h"

namespace evsse {

Status Validate(const HubOptions& o) {
  if (o.max_connections == 0)
    return InvalidArgumentError("max_connections must be at least 1");
  if (o.max_topics == 0)
    return InvalidArgumentError("max_topics must be at least 1");
  if (o.max_topic_length == 0 || o.max_topic_length > 1024)
    return OutOfRangeError("max_topic_length must be 1..1024");
  if (o.max_event_bytes == 0 || o.max_event_bytes > (1u << 30))
    return OutOfRangeError("max_event_bytes must be 1..1GiB");
  if (o.history_max_age < Millis(0))
    return OutOfRangeError("history_max_age must not be negative");
  if (o.coalesce_window < Millis(0) || o.coalesce_window > Millis(1000))
    return OutOfRangeError("coalesce_window must be 0..1s");
  if (o.history_max_bytes != 0 && o.history_max_bytes < o.max_event_bytes)
    return OutOfRangeError(
        "history_max_bytes " + std::to_string(o.history_max_bytes) +
        " is below max_event_bytes " + std::to_string(o.max_event_bytes) +
        ": it must be 0 (no budget) or hold at least one event");
  return Status::Ok();
}

Status Validate(const StreamOptions& o) {
  for (const std::string& origin : o.cors_origins) {
    if (origin == "*" && o.cors_credentials)
      return InvalidArgumentError(
          "CORS origin \"*\" cannot be combined with credentials; list the "
          "allowed origins");
    if (std::string problem = CheckCorsOrigin(origin); !problem.empty())
      return InvalidArgumentError("bad CORS origin \"" +
                                  internal::EscapeForMessage(origin) +
                                  "\": " + problem);
  }
  for (Millis d :
       {o.heartbeat, o.retry, o.retry_jitter, o.write_stall_timeout,
        o.max_lifetime, o.lifetime_jitter, o.poll_timeout, o.cors_max_age})
    if (d < Millis(0))
      return OutOfRangeError("stream durations must not be negative");
  if (o.dead_peer_timeout < Millis(0) || o.dead_peer_timeout > Millis(3600000))
    return OutOfRangeError("dead_peer_timeout must be 0..1h");
  if (Status s = ValidateEventType(o.gap_event, 64); !s.ok())
    return InvalidArgumentError("gap_event: " + s.message());
  if (o.gap_event.empty())
    return InvalidArgumentError("gap_event must not be empty");
  if (o.max_topics_per_connection == 0 || o.max_topics_per_connection > 64)
    return OutOfRangeError("max_topics_per_connection must be 1..64");
  if (o.replay_batch_bytes == 0)
    return OutOfRangeError("replay_batch_bytes must be at least 1");
  if (o.max_queued_bytes < 1024)
    return OutOfRangeError("max_queued_bytes must be at least 1024");
  if (o.padding_bytes > 64 * 1024)
    return OutOfRangeError("padding_bytes must be at most 65536");
  if (o.poll_max_events == 0)
    return OutOfRangeError("poll_max_events must be at least 1");
  return Status::Ok();
}

Status Validate(const PublishOptions& o) {
  if (o.bearer_token.empty() && !o.auth && !o.allow_unauthenticated)
    return FailedPreconditionError(
        "a publish endpoint needs a bearer_token, an auth hook, or "
        "allow_unauthenticated = true");
  if (o.max_body_bytes == 0)
    return OutOfRangeError("max_body_bytes must be at least 1");
  return Status::Ok();
}

}  // namespace evsse
