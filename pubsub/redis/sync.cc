// Watching topics: subscriptions on the subscriber connection, and the
// sync that decides where a topic's live feed starts (the stream's tail on
// a fresh watch, a back-fill from the Hub's last position after a
// reconnect).
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "link_impl.h"

namespace evsse::redis {

void LinkImpl::Watch(const std::string& name) {
  if (state_ == State::kClosed) return;
  auto [it, inserted] = topics_.try_emplace(name);
  Topic& t = it->second;
  if (!inserted && t.watched) return;
  t.watched = true;
  t.synced_once = false;
  t.live = false;
  t.overflow = false;
  t.held.clear();
  t.last_epoch = 0;
  t.last = {};
  ++t.gen;
  if (state_ == State::kReady &&
      SendSubscription("SUBSCRIBE", {Key(name, 'c')})) {
    t.subscribed = true;
    ++t.awaiting;
  }
}

void LinkImpl::Resume(const std::string& name) {
  Watch(name);
  auto it = topics_.find(name);
  if (it != topics_.end()) it->second.synced_once = true;
}

void LinkImpl::Unwatch(const std::string& name) {
  if (state_ == State::kClosed) return;
  auto it = topics_.find(name);
  if (it == topics_.end() || !it->second.watched) return;
  Topic& t = it->second;
  t.watched = false;
  t.live = false;
  t.overflow = false;
  t.held.clear();
  ++t.gen;
  if (state_ == State::kReady && t.subscribed) {
    t.subscribed = false;
    if (SendSubscription("UNSUBSCRIBE", {Key(name, 'c')})) ++t.awaiting;
  }
  if (t.awaiting == 0) topics_.erase(it);
  MaybeReportUp();
}

std::string LinkImpl::Key(const std::string& topic, char kind) const {
  std::string key;
  key.reserve(options_.key_prefix.size() + topic.size() + 4);
  key += options_.key_prefix;
  key += '{';
  key += topic;
  key += "}:";
  key += kind;
  return key;
}

bool LinkImpl::TopicOf(std::string_view channel, std::string* topic) const {
  const std::string& prefix = options_.key_prefix;
  if (channel.size() < prefix.size() + 4 ||
      channel.compare(0, prefix.size(), prefix) != 0 ||
      channel[prefix.size()] != '{' ||
      channel.substr(channel.size() - 3) != "}:c") {
    return false;
  }
  topic->assign(
      channel.substr(prefix.size() + 1, channel.size() - prefix.size() - 4));
  return true;
}

bool LinkImpl::SendSubscription(std::string_view verb,
                                const std::vector<std::string>& channels) {
  if (sharded()) {
    bool subscribe = verb == "SUBSCRIBE";
    for (const std::string& c : channels) {
      if (c == probe_channel_) {
        // The probe channel is a plain one (PUBLISH reaches it on the
        // node it is published on).
        push_->Subscription(verb, {c}, [](redisReply*, const Status&) {});
      } else if (!SendShardSubscription(subscribe, c)) {
        return false;
      }
    }
    return true;
  }
  for (size_t i = 0; i < channels.size(); i += kChannelsPerCommand) {
    size_t end = std::min(channels.size(), i + kChannelsPerCommand);
    std::vector<std::string> chunk(channels.begin() + i,
                                   channels.begin() + end);
    if (!sub_.Subscription(verb, chunk, &LinkImpl::OnSubReply, this)) {
      Fail(std::string(verb) + " could not be sent");
      return false;
    }
  }
  return true;
}

// OnSubReply gets every reply of the subscriber connection: confirmations
// ["subscribe"|"unsubscribe", channel, count] and ["message", channel,
// payload]. Anything else is ignored; NULL comes once per channel when the
// context is freed. The privdata is the link (hiredis keeps one callback
// per channel and drops a replaced one without calling it, so it must not
// own anything).
void LinkImpl::OnSubReply(redisAsyncContext*, void* reply, void* privdata) {
  auto* self = static_cast<LinkImpl*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r != nullptr) self->OnSubArray(r, true);
}

void LinkImpl::OnSubArray(const redisReply* r, bool hiredis) {
  if (state_ != State::kReady) return;
  // Any reply proves the subscription alive: probes are only needed when
  // the connection is quiet.
  last_heard_ = Clock::now();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const redisReply* kind = r->element[0];
  const redisReply* channel = r->element[1];
  if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) {
    return;
  }
  std::string_view k(kind->str, kind->len);
  // Sharded pub/sub: ssubscribe, sunsubscribe, smessage.
  if (k == "ssubscribe" || k == "sunsubscribe" || k == "smessage") {
    k.remove_prefix(1);
  }
  bool confirm = k == "subscribe" || k == "unsubscribe";
  if (confirm && hiredis) sub_.Confirmed();
  std::string_view name(channel->str, channel->len);
  if (name == probe_channel_) {
    if (k == "subscribe") return ProbeConfirmed();
    if (k == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
      OnProbe({r->element[2]->str, r->element[2]->len});
    }
    return;
  }
  std::string topic;
  if (!TopicOf(name, &topic)) return;
  if (confirm && !hiredis && k == "unsubscribe") {
    // A sunsubscribe nobody asked for: the server dropped the channel
    // because its slot moved away (a failover, a migration).
    auto it = topics_.find(topic);
    if (it != topics_.end() && it->second.watched && it->second.awaiting == 0) {
      return Misrouted(topic, "the server unsubscribed it (slot moved)");
    }
  }
  if (confirm) return OnConfirm(topic, k == "subscribe");
  const redisReply* payload = r->element[2];
  if (k == "message" && payload->type == REDIS_REPLY_STRING) {
    OnMessage(topic, {payload->str, payload->len});
  }
}

// SendShardSubscription: SSUBSCRIBE or SUNSUBSCRIBE of one topic channel.
// Confirmations arrive as pushes (OnSubArray); a refusal (MOVED: the slot
// is not served here) counts as the request's confirmation, and for an
// SSUBSCRIBE tells the owner that the topic must be re-homed.
bool LinkImpl::SendShardSubscription(bool subscribe,
                                     const std::string& channel) {
  std::string topic;
  if (!TopicOf(channel, &topic)) return true;
  uint64_t conn_gen = conn_gen_;
  push_->Subscription(
      subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", {channel},
      [this, topic, conn_gen, subscribe](redisReply* r, const Status&) {
        if (r == nullptr || r->type != REDIS_REPLY_ERROR ||
            conn_gen != conn_gen_ || state_ != State::kReady) {
          return;
        }
        std::string error(r->str, r->len);
        auto it = topics_.find(topic);
        if (it == topics_.end()) return;
        Topic& t = it->second;
        if (t.awaiting > 0) --t.awaiting;
        if (!t.watched) {
          if (t.awaiting == 0) {
            topics_.erase(it);
            MaybeReportUp();
          }
          return;
        }
        if (subscribe && t.awaiting == 0) Misrouted(topic, error);
      });
  return true;
}

// Misrouted (sharded): this shard does not serve the topic's slot (any
// more). The topic stays watched, unsubscribed and not live, until the
// cluster link re-homes it (Unwatch here, Resume on its shard).
void LinkImpl::Misrouted(const std::string& name, const std::string& why) {
  auto it = topics_.find(name);
  if (it == topics_.end() || !it->second.watched) return;
  Topic& t = it->second;
  t.subscribed = false;
  t.live = false;
  t.overflow = false;
  t.held.clear();
  ++t.gen;
  Log("redis: topic '" + name + "' is not served by " + address_.text + " (" +
      why + ")");
  if (env_.misrouted) env_.misrouted(name, why);
}

void LinkImpl::OnConfirm(const std::string& name, bool subscribed) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return;
  Topic& t = it->second;
  if (t.awaiting > 0) --t.awaiting;
  if (t.awaiting > 0) return;
  if (!t.watched) {
    topics_.erase(it);
    return MaybeReportUp();
  }
  if (subscribed) BeginSync(name);
}

void LinkImpl::OnMessage(const std::string& name, std::string_view payload) {
  auto it = topics_.find(name);
  if (it == topics_.end() || !it->second.watched) return;
  Topic& t = it->second;
  std::optional<Payload> p = ParsePayload(payload);
  if (!p) return;  // not written by evsse's publish script
  if (t.live && t.last_epoch != 0 && p->epoch != t.last_epoch) {
    // A new epoch: a failover forked the stream (or it was recreated).
    // Read from the stream where it stands, like a back-fill after a link
    // loss, holding live messages meanwhile.
    t.live = false;
    t.held.emplace_back(p->epoch, std::move(p->event));
    return Backfill(name, ++t.gen, t.last_epoch, t.last, t.last);
  }
  if (t.live) return DeliverOne(name, t, p->epoch, p->event);
  // Syncing: hold it; the sync decides what the Hub already has.
  if (t.overflow) return;
  if (t.held.size() >= kMaxHeld) {
    t.held.clear();
    t.held.shrink_to_fit();
    t.overflow = true;
    return;
  }
  t.held.emplace_back(p->epoch, std::move(p->event));
}

// BeginSync runs once a topic's SUBSCRIBE is confirmed, so every event
// published from now on also arrives as a message. A fresh watch reads
// the stream's epoch and tail; after a reconnect, the topic is back-filled
// from the last position the Hub has.
void LinkImpl::BeginSync(const std::string& name) {
  Topic& t = topics_.at(name);
  t.live = false;
  uint64_t gen = ++t.gen;
  uint64_t conn_gen = conn_gen_;
  if (!t.synced_once) {
    RunFetch(name, {}, {}, 0,
             [this, name, gen, conn_gen](Result<FetchReply> r, bool lost) {
               Topic* t = Current(name, gen, conn_gen);
               if (t == nullptr || lost) return;
               if (!r.ok()) return SyncFailed(name, r.status());
               t->last_epoch = r->epoch;
               t->last = r->tail;
               FinishSync(name, r->epoch, r->tail);
             });
    return;
  }
  uint64_t epoch = 0;
  Position from = sink_->LastPosition(name, &epoch);
  Topic* current = Current(name, gen, conn_gen);
  if (current == nullptr) return;
  if (epoch == 0) from = {};  // no stream then: all of a new one is new
  current->last_epoch = epoch;
  current->last = from;
  Backfill(name, gen, epoch, from, from);
}

namespace {

// Before is the position just before `p`.
pubsub::Position Before(pubsub::Position p) {
  if (p.minor > 0) return {p.major, p.minor - 1};
  if (p.major > 0) return {p.major - 1, UINT64_MAX};
  return p;
}

}  // namespace

// Backfill delivers the stream's entries after `after`, a page at a time,
// then reports Synced(from). A stream that was recreated (another epoch)
// or trimmed past `after` cannot fill the gap: the topic is synced at the
// stream's tail instead, which tells the Hub its subscribers missed events.
void LinkImpl::Backfill(const std::string& name, uint64_t gen,
                        uint64_t known_epoch, Position after, Position from) {
  uint64_t conn_gen = conn_gen_;
  RunFetch(
      name, after, kEnd, kBackfillPage,
      [this, name, gen, known_epoch, after, from, conn_gen](
          Result<FetchReply> r, bool lost) {
        Topic* t = Current(name, gen, conn_gen);
        if (t == nullptr || lost) return;
        if (!r.ok()) return SyncFailed(name, r.status());
        FetchReply& f = *r;
        if (f.epoch == 0) {
          t->last_epoch = 0;
          t->last = {};
          return FinishSync(name, 0, {});
        }
        if (known_epoch != 0 && f.epoch != known_epoch) {
          // A failover ended the epoch this node follows (fetch.lua
          // forked it): what it has up to the end stays good, and
          // the rest of the stream is read from there.
          std::optional<Position> end = ContinuedEnd(f.former, known_epoch);
          if (end) {
            sink_->Continued(name, known_epoch, f.epoch, *end);
            t = Current(name, gen, conn_gen);
            if (t == nullptr) return;
            t->last_epoch = f.epoch;
            t->last = std::min(t->last, *end);
            if (after > *end) {
              Log("redis: topic '" + name + "': " + FormatStreamId(after) +
                  " and what came before it after " + FormatStreamId(*end) +
                  " were lost in a failover; back-filling from there");
              return Backfill(name, gen, f.epoch, *end, std::min(from, *end));
            }
            return Backfill(name, gen, f.epoch, after, from);
          }
        }
        bool recreated = known_epoch != 0 && f.epoch != known_epoch;
        if (recreated || f.Trimmed(after)) {
          Log("redis: topic '" + name + "': " +
              (recreated ? "stream recreated" : "stream trimmed past ") +
              (recreated ? "" : FormatStreamId(after)) +
              "; syncing at its tail");
          Position at = f.tail;
          // Live messages of the new stream held meanwhile are still
          // delivered (the first of them may be what told of it).
          for (const auto& [e, event] : t->held) {
            if (e == f.epoch && event.position <= at) {
              at = Before(event.position);
              break;
            }
          }
          t->last_epoch = f.epoch;
          t->last = at;
          return FinishSync(name, f.epoch, at);
        }
        bool full = f.events.size() == kBackfillPage;
        for (const StoredEvent& e : f.events) {
          t = Current(name, gen, conn_gen);
          if (t == nullptr) return;
          ++stats_.backfilled_events;
          DeliverOne(name, *t, f.epoch, e,
                     WrittenEpoch(f.former, f.epoch, e.position));
        }
        if (Current(name, gen, conn_gen) == nullptr) return;
        if (full) {
          return Backfill(name, gen, f.epoch, f.events.back().position, from);
        }
        FinishSync(name, f.epoch, from);
      });
}

void LinkImpl::FinishSync(const std::string& name, uint64_t epoch,
                          Position from) {
  uint64_t gen = topics_.at(name).gen;
  uint64_t conn_gen = conn_gen_;
  topics_.at(name).synced_once = true;
  sink_->Synced(name, epoch, from);
  Topic* t = Current(name, gen, conn_gen);
  if (t == nullptr) return;
  if (t->overflow) {
    // Live messages were dropped while syncing: read them from the stream.
    t->overflow = false;
    t->held.clear();
    return Backfill(name, gen, t->last_epoch, t->last, t->last);
  }
  t->live = true;
  std::vector<std::pair<uint64_t, StoredEvent>> held;
  held.swap(t->held);
  for (auto& [e, event] : held) {
    t = Current(name, gen, conn_gen);
    if (t == nullptr) return;
    DeliverOne(name, *t, e, event);
  }
  MaybeReportUp();
}

// SyncFailed: the server could not serve a topic's sync. A server that
// cannot serve now takes the link down (and the sync is retried after the
// reconnect); any other error (a key of another type) is logged, and the
// topic is synced as if it had no stream so that the others go on.
void LinkImpl::SyncFailed(const std::string& name, const Status& status) {
  if (sharded() && (status.message().find(": MOVED ") != std::string::npos ||
                    status.message().find(": ASK ") != std::string::npos ||
                    status.message().find(": TRYAGAIN") != std::string::npos)) {
    return Misrouted(name, status.message());
  }
  if (status.code() == StatusCode::kUnavailable) return Fail(status.message());
  last_error_ = "topic '" + name + "': " + status.message();
  Log("redis: cannot sync " + last_error_);
  Topic& t = topics_.at(name);
  t.last_epoch = 0;
  t.last = {};
  FinishSync(name, 0, {});
}

LinkImpl::Topic* LinkImpl::Current(const std::string& name, uint64_t gen,
                                   uint64_t conn_gen) {
  if (state_ != State::kReady || conn_gen != conn_gen_) return nullptr;
  auto it = topics_.find(name);
  if (it == topics_.end() || !it->second.watched || it->second.gen != gen) {
    return nullptr;
  }
  return &it->second;
}

void LinkImpl::DeliverOne(const std::string& name, Topic& t, uint64_t epoch,
                          const StoredEvent& event, uint64_t written_in) {
  if (epoch == t.last_epoch && event.position <= t.last) return;
  t.last_epoch = epoch;
  t.last = event.position;
  sink_->Deliver(name, written_in != 0 ? written_in : epoch, event);
}

void LinkImpl::MaybeReportUp() {
  if (state_ != State::kReady || reported_up_) return;
  if (probing() && !probe_subscribed_) return;
  for (const auto& [name, t] : topics_) {
    if (t.watched && !t.live) return;
  }
  reported_up_ = true;
  sink_->LinkChanged(true);
}

}  // namespace evsse::redis
