// The polling fallback: one JSON answer per request, at once or when the
// first event comes (long poll).
#include "poll_session.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "evsse/pubsub/cursor.h"
#include "evsse/wire.h"
#include "hub_impl.h"

namespace evsse::internal {

PollSession::PollSession(StreamEndpoint* endpoint, Exchange* exchange)
    : Subscription(endpoint, exchange) {}

void PollSession::Resumed() {
  catching_up_ = false;
  const StreamOptions& o = endpoint_->options();
  if (has_gap() || HasPending() || o.poll_timeout.count() <= 0) {
    Answer();
    return;
  }
  ArmTimer(o.poll_timeout.count());
}

void PollSession::Pump() {
  if (closed_ || resolving()) return;
  if (HasPending()) Answer();
}

void PollSession::OnTimer() { Answer(); }

bool PollSession::HasPending() const {
  for (const Sub& s : subs) {
    if (s.backlog && !s.backlog->empty()) return true;
    if (!s.backlog &&
        s.topic->history.FirstAfter(s.pos) < s.topic->history.size())
      return true;
  }
  return false;
}

void PollSession::Answer() {
  HubImpl* hub = endpoint_->hub();
  const StreamOptions& o = endpoint_->options();
  nlohmann::ordered_json body;
  nlohmann::ordered_json& list = body["events"] =
      nlohmann::ordered_json::array();
  std::string type, data, id;
  size_t events = 0;
  bool caught_up = true;
  bool ok =
      Walk(std::numeric_limits<size_t>::max(), o.poll_max_events, &events,
           &caught_up, [&](const pubsub::Event& e, bool whole) {
             DecodeEventBody(std::string_view(e.wire).substr(0, e.body_size),
                             &type, &data);
             id.clear();
             if (whole)
               pubsub::AppendPosition(id, {e.epoch, e.position});
             else
               AppendCursor(id);
             list.push_back({{"id", id}, {"type", type}, {"data", data}});
           });
  if (!ok) {
    // Events after the cursor were dropped while this poll waited: report a
    // gap and move the cursor to now, as a stream would on reconnect.
    std::vector<std::string> topics;
    for (Sub& s : subs) {
      if (s.pos < s.topic->history.evicted_up_to()) {
        topics.push_back(s.topic->name);
        s.pos = hub->Tail(s.topic);
      }
    }
    std::string& gap = cold().gap_json;
    gap.clear();
    AppendGapData(gap, topics, false);
    ++hub->stats().gaps;
  }
  id.clear();
  AppendCursor(id);
  body["last_event_id"] = id;
  if (has_gap())
    body["gap"] =
        nlohmann::ordered_json::parse(cold_->gap_json, nullptr, false);
  std::string text = body.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  text += '\n';
  hub->stats().events_delivered += events;
  ++hub->stats().polls;
  exchange_->AddHeader("Content-Type", "application/json; charset=utf-8");
  exchange_->AddHeader("Cache-Control", "no-store");
  exchange_->Reply(200, "OK", text);
  Finish();
}

void PollSession::Close(CloseReason reason) {
  if (closed_) return;
  switch (reason) {
    case CloseReason::kPeerClosed:
      LogClosed(reason);  // nobody to answer
      break;
    case CloseReason::kUnavailable:
      exchange_->AddHeader("Retry-After", "1");
      exchange_->AddHeader("Content-Type", "text/plain; charset=utf-8");
      exchange_->Reply(503, "Service Unavailable",
                       "history store unavailable; poll again\n");
      break;
    default:
      Answer();  // a waiting poll is answered, never dropped
      return;
  }
  Finish();
}

}  // namespace evsse::internal
