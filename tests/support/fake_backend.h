// FakeStore and FakeBackend: an in-memory stand-in for Redis behind the
// Backend seam, so the Hub's side of it (sync, resume fetches, back-fill,
// link loss) is tested without a server. Like Redis pub/sub, delivery is
// asynchronous and at-most-once: a node whose link is down loses live
// messages and must back-fill from the stream.
#ifndef EVSSE_TESTS_FAKE_BACKEND_H_
#define EVSSE_TESTS_FAKE_BACKEND_H_

#include <event2/event.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "evsse/ext/backend.h"
#include "evsse/hub.h"

namespace evsse::testing {

class FakeBackend;

struct FakeStore {
  struct Stream {
    uint64_t epoch = 0;
    std::vector<StoredEvent> events;
    pubsub::Position max_deleted;
    std::vector<FormerEpoch> former;  // newest first
  };
  // Fork is a failover as Redis shows it: the promoted copy of `topic`
  // lacks its newest `lost` events and goes on under a new epoch; its
  // clock is behind, so new positions sort right after the copy's end
  // (among the lost ones: only the epoch tells them apart).
  void Fork(const std::string& topic, size_t lost) {
    Stream& s = streams[topic];
    s.events.resize(s.events.size() - std::min(lost, s.events.size()));
    pubsub::Position end =
        s.events.empty() ? pubsub::Position() : s.events.back().position;
    s.former.insert(s.former.begin(), {s.epoch, end});
    s.epoch = next_epoch++;
    clock_ms = end.major;
  }
  std::map<std::string, Stream> streams;
  std::vector<FakeBackend*> nodes;
  uint64_t clock_ms = 1700000000000;
  uint64_t next_epoch = 1000;
  size_t max_len = 0;  // 0: keep everything
  size_t fetches = 0;
};

class FakeBackend final : public Backend {
 public:
  FakeBackend(FakeStore* store, event_base* base, Hub* hub)
      : store_(store), base_(base), hub_(hub) {
    store_->nodes.push_back(this);
    sink_ = hub->AttachBackend(this);
    tick_ = event_new(base_, -1, 0, &FakeBackend::OnTick, this);
    Post([this](bool ok) {
      if (ok) sink_->LinkChanged(true);
    });
  }
  ~FakeBackend() override {
    hub_->AttachBackend(nullptr);
    auto& n = store_->nodes;
    n.erase(std::find(n.begin(), n.end(), this));
    // Callbacks still queued fire (cancelled) exactly once.
    std::deque<std::function<void(bool)>> left;
    left.swap(queue_);
    for (auto& f : held_) left.push_back(std::move(f));
    held_.clear();
    for (auto& f : left) f(false);
    event_free(tick_);
  }

  // SetUp(false) cuts this node's link: publishes fail, messages are lost.
  // SetUp(true) back-fills every watched topic, then reports the link up.
  void SetUp(bool up) {
    up_ = up;
    if (!up) {
      sink_->LinkChanged(false);
      return;
    }
    Post([this](bool) {
      for (const std::string& topic : watched_) {
        uint64_t epoch = 0;
        pubsub::Position last = sink_->LastPosition(topic, &epoch);
        const FakeStore::Stream& s = store_->streams[topic];
        for (const StoredEvent& e : s.events)
          if (e.position > last) sink_->Deliver(topic, s.epoch, e);
        sink_->Synced(topic, s.epoch, last);
      }
      sink_->LinkChanged(true);
    });
  }

  void Publish(const std::string& topic, std::string_view type,
               std::string_view data, PublishDone done) override {
    if (!up_) {
      done(UnavailableError("fake link down"), 0, {});
      return;
    }
    FakeStore::Stream& s = store_->streams[topic];
    if (s.epoch == 0) s.epoch = store_->next_epoch++;
    StoredEvent e{
        {++store_->clock_ms, 0}, std::string(type), std::string(data)};
    s.events.push_back(e);
    while (store_->max_len && s.events.size() > store_->max_len) {
      s.max_deleted = s.events.front().position;
      s.events.erase(s.events.begin());
    }
    for (FakeBackend* node : store_->nodes) node->Broadcast(topic, s.epoch, e);
    uint64_t epoch = s.epoch;
    Post([done, epoch, e](bool ok) {
      done(ok ? Status::Ok() : CancelledError("gone"), epoch, e.position);
    });
  }

  // Watch subscribes at once (live events are delivered from now on) and
  // syncs at the stream's tail as read when the sync runs: on the next
  // tick, or at ReleaseSyncs while hold_syncs is set (Redis reads the tail
  // a round trip after the SUBSCRIBE is confirmed).
  void Watch(const std::string& topic) override {
    watched_.insert(topic);
    auto sync = [this, topic](bool ok) {
      if (!ok || !watched_.count(topic)) return;
      const FakeStore::Stream& s = store_->streams[topic];
      pubsub::Position tail;
      if (!s.events.empty()) tail = s.events.back().position;
      sink_->Synced(topic, s.epoch, tail);
    };
    if (hold_syncs) {
      held_.push_back(std::move(sync));
    } else {
      Post(std::move(sync));
    }
  }
  void Unwatch(const std::string& topic) override { watched_.erase(topic); }

  void Fetch(const std::string& topic, pubsub::Position after,
             pubsub::Position until, size_t limit, FetchDone done) override {
    ++store_->fetches;
    if (!up_) {
      done(UnavailableError("fake link down"));
      return;
    }
    FetchResult r;
    const FakeStore::Stream& s = store_->streams[topic];
    r.epoch = s.epoch;
    r.trimmed = s.max_deleted > after;
    r.former = s.former;
    // Past the stream's end: a position it never handed out (one of the
    // stream before StartOver).
    r.ahead =
        after > (s.events.empty() ? s.max_deleted : s.events.back().position);
    for (const StoredEvent& e : s.events) {
      if (e.position <= after || e.position > until) continue;
      if (r.events.size() == limit) {
        r.more = true;
        break;
      }
      r.events.push_back(e);
    }
    auto reply = [this, done, r](bool ok) {
      if (!ok)
        done(CancelledError("gone"));
      else if (!up_)
        done(UnavailableError("fake link down"));  // lost while held
      else
        done(r);
    };
    if (hold_fetches) {
      held_.push_back(std::move(reply));
    } else {
      Post(std::move(reply));
    }
  }

  // expand serves a requested topic by several (Backend::Expand), answered
  // on the next tick (held like the fetches while hold_expands is set);
  // empty: the seam's default. expand_error fails every expansion.
  void Expand(const std::vector<std::string>& topics,
              ExpandDone done) override {
    if (expand.empty() && !expand_error)
      return Backend::Expand(topics, std::move(done));
    std::vector<std::vector<std::string>> out;
    for (const std::string& t : topics) {
      auto it = expand.find(t);
      out.push_back(it == expand.end() ? std::vector<std::string>{t}
                                       : it->second);
    }
    auto reply = [this, done, out](bool ok) {
      if (!ok)
        done(CancelledError("gone"));
      else if (expand_error)
        done(UnavailableError("fake expand failed"));
      else
        done(out);
    };
    if (hold_expands) {
      held_.push_back(std::move(reply));
    } else {
      Post(std::move(reply));
    }
  }
  // StartOver empties a topic's stream under the same epoch (what a Kafka
  // topic deleted and created again is) and tells every node following it
  // (BackendSink::Restarted). ExpansionChanged tells this node's Hub that
  // `topic` expands differently now (set `expand` first).
  void StartOver(const std::string& topic) {
    FakeStore::Stream& s = store_->streams[topic];
    s.events.clear();
    s.max_deleted = {};
    uint64_t epoch = s.epoch;
    for (FakeBackend* node : store_->nodes) {
      if (!node->watched_.count(topic)) continue;
      node->Post([node, topic, epoch](bool ok) {
        if (ok) node->sink_->Restarted(topic, epoch, {});
      });
    }
  }
  void ExpansionChanged(const std::string& topic) {
    Post([this, topic](bool ok) {
      if (ok) sink_->ExpansionChanged(topic);
    });
  }
  std::map<std::string, std::vector<std::string>> expand;
  bool expand_error = false;
  bool hold_expands = false;

  // hold_fetches keeps Fetch replies (read at the call) until
  // ReleaseFetches; one released while the link is down fails.
  // hold_syncs keeps Watch's syncs the same way.
  bool hold_fetches = false;
  bool hold_syncs = false;
  size_t held_fetches() const { return held_.size(); }
  void ReleaseFetches() {
    for (auto& f : held_) Post(std::move(f));
    held_.clear();
  }
  void ReleaseSyncs() { ReleaseFetches(); }

  size_t watched() const { return watched_.size(); }
  BackendStats backend_stats() const override {
    BackendStats s;
    s.up = up_;
    return s;
  }

 private:
  void Broadcast(const std::string& topic, uint64_t epoch,
                 const StoredEvent& e) {
    if (!up_ || !watched_.count(topic)) return;  // at-most-once, like Redis
    Post([this, topic, epoch, e](bool ok) {
      if (!ok || !up_ || !watched_.count(topic)) return;
      // A new epoch: tell where the one the Hub has ended, as the Redis
      // link does after reading the fork.
      uint64_t known = 0;
      sink_->LastPosition(topic, &known);
      if (known != 0 && known != epoch) {
        const auto& former = store_->streams[topic].former;
        if (auto end = ContinuedEnd(former, known))
          sink_->Continued(topic, known, epoch, *end);
      }
      sink_->Deliver(topic, epoch, e);
    });
  }
  void Post(std::function<void(bool)> f) {
    queue_.push_back(std::move(f));
    event_active(tick_, EV_TIMEOUT, 0);
  }
  static void OnTick(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<FakeBackend*>(arg);
    std::deque<std::function<void(bool)>> now;
    now.swap(self->queue_);
    for (auto& f : now) f(true);
  }

  FakeStore* store_;
  event_base* base_;
  Hub* hub_;
  BackendSink* sink_ = nullptr;
  event* tick_ = nullptr;
  bool up_ = true;
  std::set<std::string> watched_;
  std::deque<std::function<void(bool)>> queue_;
  std::vector<std::function<void(bool)>> held_;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_FAKE_BACKEND_H_
