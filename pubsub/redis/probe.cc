// Probing the subscription. A subscriber connection only receives, so a cut
// without FIN or RST (a firewall that forgot the flow, a partition) leaves
// it looking idle, not broken: the kernel has nothing to retransmit and
// hiredis has no reply to wait for. The command connection finds such a cut
// only when the node publishes. So, whenever the subscriber connection has
// been quiet for probe_interval, the link PUBLISHes a sequence number on
// its own probe channel over the command connection and expects it back on
// the subscriber connection within probe_timeout. PING cannot do this job:
// hiredis 0.14 hands a PING reply on a subscribed context to the wrong
// callback.
//
// A missed probe is a link failure like any other (Fail): publishes fail
// fast from then on, and the reconnect re-subscribes and back-fills every
// followed topic, so the subscribers get what was published meanwhile, or
// the gap event when the stream no longer holds it.
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "link_impl.h"

namespace evsse::redis {

std::string LinkImpl::NewProbeChannel() {
  char id[17];
  std::snprintf(id, sizeof(id), "%016llx",
                static_cast<unsigned long long>(rng_()));
  return options_.key_prefix + "{probe}:" + id;
}

// ProbeConfirmed: the probe channel's SUBSCRIBE is confirmed, so Redis
// delivers to this connection whatever is published there from now on.
void LinkImpl::ProbeConfirmed() {
  if (probe_subscribed_) return;
  probe_subscribed_ = true;
  probe_pending_ = false;
  ArmProbe(options_.probe_interval);
  MaybeReportUp();
}

void LinkImpl::StopProbing() {
  evtimer_del(probe_timer_);
  probe_subscribed_ = false;
  probe_pending_ = false;
}

void LinkImpl::ArmProbe(Clock::duration after) {
  timeval tv = ToTimeval(after);
  evtimer_add(probe_timer_, &tv);
}

void LinkImpl::OnProbeTimer(evutil_socket_t, short, void* arg) {
  static_cast<LinkImpl*>(arg)->ProbeTick();
}

void LinkImpl::ProbeTick() {
  if (state_ != State::kReady || !probe_subscribed_) return;
  Clock::time_point now = Clock::now();
  if (probe_pending_) {
    // The deadline runs from the last thing the subscription delivered, not
    // from the send: under a burst the probe queues behind the messages
    // ahead of it, and a subscription that keeps delivering is not deaf.
    // Cut off, it delivers nothing, and the deadline is the send +
    // probe_timeout.
    Clock::duration waited = now - std::max(probe_sent_at_, last_heard_);
    if (waited < options_.probe_timeout) {
      return ArmProbe(options_.probe_timeout - waited);
    }
    ++stats_.probes_missed;
    return Fail("subscription probe not answered within " +
                std::to_string(options_.probe_timeout.count()) +
                " ms (nothing received meanwhile)");
  }
  Clock::duration quiet = now - last_heard_;
  if (quiet < options_.probe_interval) {
    return ArmProbe(options_.probe_interval - quiet);
  }
  SendProbe();
}

void LinkImpl::SendProbe() {
  uint64_t seq = ++probe_seq_;
  std::string payload = std::to_string(seq);
  probe_pending_ = true;
  probe_sent_at_ = Clock::now();
  ++stats_.probes_sent;
  uint64_t gen = conn_gen_;
  if (sentinel_mode()) {
    // A primary demoted behind our back still relays PUBLISH to our
    // subscription (replicas serve pub/sub): only its role tells.
    cmd_.Command({"ROLE"}, [this, gen](redisReply* r, const Status&) {
      if (r == nullptr || gen != conn_gen_ || state_ != State::kReady) return;
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
          r->element[0]->type == REDIS_REPLY_STRING &&
          std::string_view(r->element[0]->str, r->element[0]->len) !=
              "master") {
        Switched(address_.text + " is no longer the primary (ROLE " +
                 std::string(r->element[0]->str, r->element[0]->len) + ")");
      }
    });
  }
  cmd_.Command(
      {"PUBLISH", probe_channel_, payload},
      [this, gen](redisReply* r, const Status&) {
        // A lost connection is reported by Conn (through Fail).
        if (r == nullptr || gen != conn_gen_ || state_ != State::kReady) {
          return;
        }
        if (r->type == REDIS_REPLY_ERROR) {
          return Fail("probe PUBLISH failed: " + std::string(r->str, r->len));
        }
        // No receiver: Redis no longer has our subscriber connection (it
        // closed it, or this is another server than the one it is on).
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
          ++stats_.probes_missed;
          Fail(
              "subscription lost on the server (a probe reached no "
              "subscriber)");
        }
      });
  if (state_ == State::kReady && probe_pending_) {
    ArmProbe(options_.probe_timeout);
  }
}

void LinkImpl::OnProbe(std::string_view payload) {
  if (!probe_pending_ || payload != std::to_string(probe_seq_)) return;
  Clock::time_point now = Clock::now();
  probe_pending_ = false;
  probe_answered_ = true;
  probe_answered_at_ = now;
  stats_.delivery_lag = std::chrono::duration_cast<std::chrono::microseconds>(
      now - probe_sent_at_);
  ArmProbe(options_.probe_interval);
}

}  // namespace evsse::redis
