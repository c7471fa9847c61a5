// Sentinel: finding the primary through Redis Sentinel, and following it.
//
// Discovery (Connect, in sentinel mode) asks the sentinels in turn, from
// the one after the last asked: AUTH (sentinel_password) and SENTINEL
// get-master-addr-by-name. A sentinel that refuses, fails, or answers
// nothing within connect_timeout (the command timeout of this connection)
// is skipped; when none names a primary, the link fails and retries with
// its usual backoff. The answer is only a candidate: the handshake on the
// data connections checks ROLE, and a server that is not master fails the
// link (which then asks again).
//
// The sentinel that answered is then kept, subscribed to +switch-master:
// a switch of our master to another address fails the link, whose
// reconnect rediscovers the primary, re-subscribes and back-fills every
// followed topic. If that sentinel connection is lost while the link is
// up, the next sentinel is asked again after reconnect_min (an answer
// naming another primary than the one in use is a switch too) and the
// watch moves there. Sentinel's messages are advisory: ROLE on every probe
// and READONLY / MASTERDOWN answers catch a switch that no message told.
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "link_impl.h"

namespace evsse::redis {
namespace {

std::string_view Text(const redisReply* r) {
  return r != nullptr &&
                 (r->type == REDIS_REPLY_STRING ||
                  r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}

// HostPort writes what Sentinel names (an IP, v6 without brackets, and a
// port) as an address string.
std::string HostPort(std::string_view host, std::string_view port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out = "[" + std::string(host) + "]";
  } else {
    out = std::string(host);
  }
  return out + ":" + std::string(port);
}

}  // namespace

void LinkImpl::AskSentinel() {
  ++sentinel_gen_;
  sen_.Close(CancelledError("sentinel conversation replaced"));
  const Address& where = sentinels_[sentinel_next_ % sentinels_.size()];
  sentinel_next_ = (sentinel_next_ + 1) % sentinels_.size();
  ++sentinel_asked_;
  Status s = sen_.Open(where);
  if (!s.ok()) return SentinelFailed(s.message());
  uint64_t gen = sentinel_gen_;
  std::string who = "sentinel " + where.text;
  if (!options_.sentinel_password.empty()) {
    sen_.Command(
        {"AUTH", options_.sentinel_password},
        [this, gen, who](redisReply* r, const Status&) {
          if (r == nullptr || gen != sentinel_gen_) return;
          if (r->type == REDIS_REPLY_ERROR)
            SentinelFailed(who + ": AUTH failed: " + std::string(Text(r)));
        });
  }
  sen_.Command(
      {"SENTINEL", "get-master-addr-by-name", options_.sentinel_master},
      [this, gen, who](redisReply* r, const Status&) {
        // A lost connection is reported by Conn (through SentinelFailed).
        if (r == nullptr || gen != sentinel_gen_) return;
        if (r->type == REDIS_REPLY_ERROR) {
          return SentinelFailed(who + ": " + std::string(Text(r)));
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            Text(r->element[0]).empty() || Text(r->element[1]).empty()) {
          return SentinelFailed(who + " knows no master named \"" +
                                options_.sentinel_master + "\"");
        }
        std::string text = HostPort(Text(r->element[0]), Text(r->element[1]));
        Result<Address> primary = ParseAddress(text);
        if (!primary.ok()) {
          return SentinelFailed(who + " named an unusable primary: " +
                                primary.status().message());
        }
        SentinelAnswered(std::move(primary).value());
      });
}

// SentinelAnswered runs inside the sentinel connection's reply callback.
void LinkImpl::SentinelAnswered(Address primary) {
  if (sentinel_watching_) {
    if (primary.text != address_.text) {
      return Switched("sentinel names " + primary.text +
                      " as the primary, not " + address_.text);
    }
  } else {
    if (state_ != State::kConnecting) return;
    address_ = std::move(primary);
    stats_.primary = address_.text;
    sentinel_watching_ = true;  // from now on a lost sentinel is re-watched
    OpenData();
  }
  if (!sen_.Subscription("SUBSCRIBE", {"+switch-master"},
                         &LinkImpl::OnSentinelSub, this)) {
    SentinelFailed("SUBSCRIBE +switch-master could not be sent");
  }
}

// SentinelFailed: the current sentinel cannot serve. Deferred: it may run
// inside a callback of the sentinel connection.
void LinkImpl::SentinelFailed(const std::string& error) {
  if (state_ == State::kClosed) return;
  if (!sentinel_errors_.empty()) sentinel_errors_ += "; ";
  sentinel_errors_ += error;
  event_active(sentinel_event_, EV_TIMEOUT, 0);
}

void LinkImpl::OnSentinelEvent(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  if (self->state_ != State::kConnecting && self->state_ != State::kReady) {
    return;
  }
  if (!self->sentinel_watching_) {
    // Discovery: the next sentinel, until each was asked once.
    if (self->sentinel_asked_ < self->sentinels_.size()) {
      return self->AskSentinel();
    }
    std::string errors = std::move(self->sentinel_errors_);
    self->sentinel_errors_.clear();
    return self->Fail("no sentinel named the primary of \"" +
                      self->options_.sentinel_master + "\" (" + errors + ")");
  }
  // The watch was lost: the link itself may be fine. Ask again shortly.
  self->Log("redis: sentinel watch lost (" + self->sentinel_errors_ +
            "); asking the next sentinel");
  self->sentinel_errors_.clear();
  timeval tv = ToTimeval(self->options_.reconnect_min);
  evtimer_add(self->sentinel_timer_, &tv);
}

void LinkImpl::OnSentinelTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<LinkImpl*>(arg);
  if (self->state_ != State::kConnecting && self->state_ != State::kReady) {
    return;
  }
  self->WatchSwitches();
}

void LinkImpl::WatchSwitches() {
  sentinel_watching_ = true;
  sentinel_asked_ = 0;
  AskSentinel();
}

// OnSentinelSub: confirmations and +switch-master messages
// ("<master> <old-ip> <old-port> <new-ip> <new-port>").
void LinkImpl::OnSentinelSub(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<LinkImpl*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  std::string_view kind = Text(r->element[0]);
  if (kind == "subscribe") {
    self->sen_.Confirmed();
    return;
  }
  if (kind != "message") return;
  if (self->state_ != State::kConnecting && self->state_ != State::kReady) {
    return;
  }
  std::string_view payload = Text(r->element[2]);
  std::vector<std::string_view> words;
  size_t at = 0;
  while (at < payload.size()) {
    size_t end = payload.find(' ', at);
    if (end == std::string_view::npos) end = payload.size();
    if (end > at) words.push_back(payload.substr(at, end - at));
    at = end + 1;
  }
  if (words.size() != 5 || words[0] != self->options_.sentinel_master) return;
  std::string to = HostPort(words[3], words[4]);
  if (to == self->address_.text) return;
  self->Switched("+switch-master from " + HostPort(words[1], words[2]) +
                 " to " + to);
}

// Switched: the primary moved. The link goes down now (publishes answer
// kUnavailable from here on) and reconnects at once through the sentinels.
void LinkImpl::Switched(const std::string& why) {
  if (state_ != State::kConnecting && state_ != State::kReady) return;
  ++stats_.failovers;
  attempt_ = 0;
  Fail("primary switched: " + why);
}

void LinkImpl::CheckRoleError(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return;
  std::string_view text = Text(r);
  if (text.find("READONLY") == std::string_view::npos &&
      text.find("MASTERDOWN") == std::string_view::npos) {
    return;
  }
  // Without sentinels there is nowhere else to go: the error reaches the
  // caller (kUnavailable) and the link stays.
  if (sentinel_mode()) {
    Switched(address_.text + " answered " + std::string(text));
  }
}

}  // namespace evsse::redis
