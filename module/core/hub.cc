#include "evsse/hub.h"

#include <event2/buffer.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "evsse/wire.h"
#include "hub_impl.h"
#include "request.h"

namespace evsse {

struct Hub::Impl : internal::HubImpl {
  using HubImpl::HubImpl;
};

namespace internal {
namespace {

// Pages fetched for resuming sessions stay shareable this long, within this
// many bytes in all: long enough for a reconnect storm's clients (their
// retry is jittered over seconds) to walk the same pages, short enough that
// a stream wiped behind this node's back is not replayed for long.
constexpr size_t kFetchShareBytes = 16 << 20;
constexpr Millis kFetchShareTtl{5000};
// Failovers a topic remembers (cursors of older epochs get the gap event).
constexpr size_t kMaxFormerEpochs = 8;

}  // namespace

HubImpl::HubImpl(event_base* base, HubOptions options)
    : base_(base), options_(std::move(options)) {
  bus_ = options_.bus ? options_.bus : std::make_shared<pubsub::Bus>();
  scratch_ = evbuffer_new();
  reap_event_ = OwnedEvent(base_, &HubImpl::OnReap, this);
  trim_timer_ = OwnedEvent(base_, &HubImpl::OnTrim, this);
  done_event_ = OwnedEvent(base_, &HubImpl::OnShutdownDone, this);
  wave_timer_ = OwnedEvent(base_, &HubImpl::OnWave, this);
  flush_event_ = OwnedEvent(base_, &HubImpl::OnFlush, this);
  flush_timer_ = OwnedEvent(base_, &HubImpl::OnFlushTimer, this);
  fetch_share_ = std::make_unique<FetchShare>(base_, &HubImpl::MakeEvent,
                                              kFetchShareBytes, kFetchShareTtl);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) wake_error_ = errno;
  if (wake_fd_ >= 0) {
    wake_event_ = OwnedEvent(base_, &HubImpl::OnWake, this,
                             EV_READ | EV_PERSIST, wake_fd_);
    wake_event_.Add();
  }
  if (options_.history_max_age.count() > 0) {
    sweep_timer_ = OwnedEvent(base_, &HubImpl::OnSweep, this, EV_PERSIST);
    sweep_timer_.AfterMs(
        std::clamp<int64_t>(options_.history_max_age.count() / 8, 20, 1000));
  }
  // Attach last: from here on publishers on other threads may reach us.
  // Events the bus carried before this Hub joined are not in its history:
  // a cursor among them must get a gap, not a silent skip.
  if (wake_fd_ >= 0) forgotten_up_to_ = bus_->Attach(this);
}

HubImpl::~HubImpl() {
  closing_ = true;
  // A Hub detaches its store when it goes: the store answers what it holds
  // (kCancelled) while the sessions and the fetch share still exist, and
  // never calls back afterwards (its owner destroys it whenever).
  if (Backend* b = backend_.exchange(nullptr)) b->HubGone();
  if (wake_fd_ >= 0) bus_->Detach(this);
  while (Subscription* s = sessions_.front()) s->Close(CloseReason::kHubGone);
  OnReap(-1, 0, this);
  fetch_share_.reset();  // its waiters (sessions, all gone) hear kCancelled
  // Fail what never reached the loop; every callback fires exactly once.
  std::vector<Pending> left;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    left.swap(inbox_);
  }
  for (Pending& p : left) {
    if (!p.done) continue;
    (*p.done)(CancelledError("hub destroyed before the event was delivered"));
    delete p.done;
  }
  std::vector<std::function<void()>> done;
  done.swap(shutdown_done_);
  for (auto& d : done) d();
  endpoints.clear();
  wake_event_ = OwnedEvent();  // before its descriptor goes
  if (wake_fd_ >= 0) close(wake_fd_);
  evbuffer_free(scratch_);
}

Status HubImpl::Publish(std::string_view topic, Message message,
                        PublishCallback done) {
  if (Status s = ValidateTopic(topic, options_.max_topic_length); !s.ok())
    return s;
  if (message.type.size() + message.data.size() > options_.max_event_bytes) {
    return OutOfRangeError(
        "event is " +
        std::to_string(message.type.size() + message.data.size()) +
        " bytes; the limit is " + std::to_string(options_.max_event_bytes));
  }
  if (Status s = ValidateEventType(message.type); !s.ok()) return s;
  if (Status s = ValidateEventData(message.data, options_.max_event_bytes);
      !s.ok())
    return s;
  auto* token = done ? new PublishCallback(std::move(done)) : nullptr;
  if (backend_.load()) {
    // The store assigns the id; the request goes to the loop thread, which
    // owns the backend's connection.
    bool wake;
    {
      std::lock_guard<std::mutex> lock(inbox_mu_);
      wake = inbox_.empty();
      inbox_.push_back(
          {pubsub::EventRef(), token, std::string(topic), std::move(message)});
    }
    if (wake) {
      uint64_t one = 1;
      ssize_t n = write(wake_fd_, &one, sizeof one);
      (void)n;
    }
    return Status::Ok();
  }
  std::string body;
  body.reserve(message.data.size() + message.type.size() + 48);
  AppendEventBody(body, message.type, message.data);
  bus_->Publish(
      std::string(topic), std::move(body),
      [](pubsub::Event& ev) {
        AppendIdAndEnd(ev.wire, {ev.epoch, ev.position});
      },
      this, token);
  return Status::Ok();
}

void HubImpl::OnBusEvent(const pubsub::EventRef& event, void* token) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    wake = inbox_.empty();
    inbox_.push_back({event, static_cast<PublishCallback*>(token), {}, {}});
  }
  if (wake) {
    uint64_t one = 1;
    // A full eventfd counter (EAGAIN) still leaves the loop woken.
    ssize_t n = write(wake_fd_, &one, sizeof one);
    (void)n;
  }
}

void HubImpl::OnWake(evutil_socket_t fd, short, void* arg) {
  uint64_t count;
  ssize_t n = read(fd, &count, sizeof count);
  (void)n;
  static_cast<HubImpl*>(arg)->ProcessInbox();
}

void HubImpl::ProcessInbox() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    batch_.swap(inbox_);
  }
  if (batch_.empty()) return;
  const int64_t now = options_.coalesce_window.count() > 0 ? NowUs() : 0;
  for (Pending& p : batch_) {
    if (!p.event) {
      PublishToBackend(p);
      continue;
    }
    // Room first: eviction may forget idle topics, and must not forget the
    // one this event goes to once it is found.
    size_t bytes = pubsub::EventBytes(*p.event);
    if (!FindTopic(p.event->topic)) bytes += TopicBytes(p.event->topic);
    if (OverBudget(bytes) && !EvictFor(bytes)) {
      Refuse(p, ResourceExhaustedError(
                    "history memory full: history_max_bytes " +
                    std::to_string(options_.history_max_bytes) +
                    " is held by events live subscribers have not "
                    "received yet"));
      continue;
    }
    Topic* t = GetTopic(p.event->topic);
    if (!t) {
      Refuse(p, ResourceExhaustedError("too many topics in use (max_topics " +
                                       std::to_string(options_.max_topics) +
                                       "): every topic has subscribers"));
      continue;
    }
    TrimExpired(t);
    t->history.Append(p.event);
    ++stats_.events_published;
    MarkDirty(t, now);  // the batch arrived at once
    Retouch(t, true);
  }
  // Answer the publishers first: the id is known, and a publisher that gets
  // its answer sooner sends its next event sooner, into the same fan-out.
  std::vector<Pending> batch;
  batch.swap(batch_);
  for (Pending& p : batch) {
    if (!p.done || !p.topic.empty()) continue;
    if (p.event) {
      std::string id;
      pubsub::AppendPosition(id, {p.event->epoch, p.event->position});
      (*p.done)(std::move(id));
    } else {
      (*p.done)(std::move(p.refusal));
    }
    delete p.done;
  }
  Flush(false);
  batch.clear();
  if (batch_.empty()) batch_.swap(batch);  // keep the capacity
}

void HubImpl::Refuse(Pending& p, Status why) {
  ++stats_.publish_errors;
  if (LogEnabled(LogLevel::kWarning))
    Log(LogLevel::kWarning,
        "publish to '" + p.event->topic + "' refused: " + why.message());
  p.event = pubsub::EventRef();
  p.refusal = std::move(why);
}

void HubImpl::PublishToBackend(Pending& p) {
  PublishCallback* done = p.done;
  p.done = nullptr;
  Backend* backend = backend_.load();
  if (!backend) {
    // The store was detached (its link destroyed) while this publish waited
    // in the inbox: it was stored nowhere, so retrying is safe.
    ++stats_.publish_errors;
    if (done) {
      (*done)(
          UnavailableError("the store was detached before the event "
                           "reached it"));
      delete done;
    }
    return;
  }
  backend->Publish(
      p.topic, p.message.type, p.message.data,
      [this, done](Status status, uint64_t epoch, pubsub::Position pos) {
        if (!status.ok()) ++stats_.publish_errors;
        if (!done) return;
        if (status.ok()) {
          std::string id;
          pubsub::AppendPosition(id, {epoch, pos});
          (*done)(std::move(id));
        } else {
          (*done)(std::move(status));
        }
        delete done;
      });
}

void HubImpl::AttachBackend(Backend* backend) {
  backend_ = backend;
  link_up_ = false;
  if (fetch_share_) fetch_share_->Clear();
  std::vector<Topic*> all;
  for (auto& [name, t] : topics_) {
    t->watched = false;
    t->synced = backend == nullptr;
    all.push_back(t.get());
  }
  if (closing_) return;
  for (Topic* t : all) Release(t);  // unwatched: some are idle now
}

pubsub::EventRef HubImpl::MakeEvent(const std::string& topic, uint64_t epoch,
                                    const StoredEvent& e) {
  auto* ev = new pubsub::Event;
  pubsub::EventRef ref(ev);
  ev->topic = topic;
  ev->epoch = epoch;
  ev->position = e.position;
  ev->published_ms = NowMs();
  ev->wire.reserve(e.data.size() + e.type.size() + 64);
  AppendEventBody(ev->wire, e.type, e.data);
  ev->body_size = static_cast<uint32_t>(ev->wire.size());
  AppendIdAndEnd(ev->wire, {epoch, e.position});
  return ref;
}

void HubImpl::Deliver(const std::string& topic, uint64_t epoch,
                      const StoredEvent& event) {
  Topic* t = FindTopic(topic);
  if (!t || !t->watched) return;
  std::optional<pubsub::Position> end;
  if (t->epoch != epoch && t->former &&
      (end = ContinuedEnd(*t->former, epoch)) && event.position <= *end) {
    // Written before a failover, in an epoch the stream continues: it
    // keeps its id.
  } else if (t->epoch != epoch) {
    // The stream was recreated: reset, then keep this, its first event.
    if (t->epoch != 0) ResetTopic(t, epoch);
    t->epoch = epoch;  // the first event created the stream
  }
  if (event.position <= t->history.last()) return;  // already have it
  // The event is stored already: it is never refused here, its subscribers
  // are owed it; what no subscriber needs makes room.
  pubsub::EventRef ev = MakeEvent(topic, epoch, event);
  if (OverBudget(pubsub::EventBytes(*ev))) EvictFor(pubsub::EventBytes(*ev));
  TrimExpired(t);
  t->history.Append(std::move(ev));
  ++stats_.events_published;
  MarkDirty(t, options_.coalesce_window.count() > 0 ? NowUs() : 0);
  Retouch(t, true);
  // Fan out once per batch of deliveries (one read from the store).
  flush_event_.Activate();
}

void HubImpl::MarkDirty(Topic* t, int64_t now) {
  const int64_t window = options_.coalesce_window.count() * 1000;
  if (window > 0) {
    // Arrivals count too: a Hub that is not busy (another loop took the
    // publisher, or it has few subscribers) still sees a burst as one.
    if (now - t->arrived_us < window) t->burst = true;
    t->arrived_us = now;
  }
  // A topic is in dirty_topics_ exactly while it has unsent events.
  if (t->unsent++ == 0) dirty_topics_.push_back(t);
}

void HubImpl::OnFlush(evutil_socket_t, short, void* arg) {
  static_cast<HubImpl*>(arg)->Flush(false);
}

void HubImpl::OnFlushTimer(evutil_socket_t, short, void* arg) {
  static_cast<HubImpl*>(arg)->Flush(true);
}

// Flush fans out the dirty topics, except, unless forced, those active
// within the coalescing window (a fan-out, or a subscriber still writing the
// last one): they wait for the flush timer, at most one window, and their
// events then leave together, several per write. A lone event on a quiet
// topic goes out at once. One write per event costs about as much as the
// event's whole delivery, so when events come faster than the loop writes
// them, this is what keeps the loop ahead.
void HubImpl::Flush(bool force) {
  const int64_t window = options_.coalesce_window.count() * 1000;
  const int64_t now = window > 0 ? NowUs() : 0;
  size_t kept = 0;
  // Index loop: FanOut only marks sessions it closes, but keep it simple
  // and robust against a topic list that grows meanwhile.
  for (size_t i = 0; i < dirty_topics_.size(); ++i) {
    Topic* t = dirty_topics_[i];
    // A topic nobody listens to live has nothing to coalesce: fan out (and
    // trim its history) at once. Nor is a wait that would let the history
    // drop events its live subscribers have not had yet: past half the
    // history, fan out now.
    if (!force && window > 0 && (now - t->active_us < window || t->burst) &&
        !t->subscribers.empty() &&
        t->unsent * 2 < options_.history_max_events) {
      dirty_topics_[kept++] = t;
      continue;
    }
    FanOut(t);
    t->burst = false;
    t->unsent = 0;
    // From the end of the fan-out: a transport that writes during it (the
    // evhttp adapter does) makes it long, and events that arrive right
    // after it are what coalescing is for.
    if (window > 0) t->active_us = NowUs();
    // Trim only after everyone live got the batch: a burst larger than the
    // history must not cost live subscribers events.
    t->history.TrimToCount(options_.history_max_events);
    Release(t);  // may forget it: nothing below touches it
  }
  dirty_topics_.resize(kept);
  // What the fan-out delivered may be evicted now.
  if (OverBudget(0)) EvictFor(0);
  if (kept > 0 && !flush_timer_.pending()) flush_timer_.AfterUs(window);
}

// ResetTopic: the topic's stream was recreated (new epoch). Positions of the
// old stream mean nothing in the new one: its subscribers are closed and
// come back with a cursor the Hub then reports as unknown.
void HubImpl::ResetTopic(Topic* t, uint64_t epoch) {
  Log(LogLevel::kWarning, "topic '" + t->name +
                              "': stream recreated (new epoch); closing its "
                              "subscribers");
  for (Subscription* s : t->subscribers) s->Close(CloseReason::kUnavailable);
  fetch_share_->DropTopic(t->name);
  t->history.Reset();
  t->epoch = epoch;
  t->synced_from = pubsub::Position();
  Retouch(t, false);  // it has subscribers (or is watched): kept
}

// Continued: a failover moved the topic's stream to a server that went on
// from what it had (`end`) under a new epoch. Cursors up to `end` stay
// good; what this node holds past it was lost, and so is the place of every
// subscriber that had any of it: those resume and learn of the gap.
void HubImpl::Continued(const std::string& topic, uint64_t old_epoch,
                        uint64_t epoch, pubsub::Position end) {
  Topic* t = FindTopic(topic);
  if (!t || !t->watched || t->epoch == epoch) return;
  if (t->epoch != old_epoch) return ResetTopic(t, epoch);
  std::string at;
  pubsub::AppendPosition(at, {old_epoch, end});
  Log(LogLevel::kWarning, "topic '" + t->name + "': the stream goes on " +
                              "under a new epoch after " + at +
                              " (a failover); closing subscribers past it");
  if (!t->former) t->former = std::make_unique<std::vector<FormerEpoch>>();
  std::vector<FormerEpoch>& former = *t->former;
  former.insert(former.begin(), {old_epoch, end});
  if (former.size() > kMaxFormerEpochs) former.resize(kMaxFormerEpochs);
  fetch_share_->DropTopic(t->name);
  t->history.DropAfter(end);
  t->synced_from = std::min(t->synced_from, end);
  t->epoch = epoch;
  for (Subscription* s : t->subscribers) {
    // A session still replaying holds pages of the old epoch: it resumes.
    if (s->catching_up() || !s->Continue(t, epoch, end))
      s->Close(CloseReason::kUnavailable);
  }
}

void HubImpl::Synced(const std::string& topic, uint64_t epoch,
                     pubsub::Position from) {
  Topic* t = FindTopic(topic);
  if (!t || !t->watched) return;
  if (t->epoch != 0 && epoch != t->epoch) {
    // The stream this node followed is gone (wiped: epoch 0) or recreated:
    // positions of the old one mean nothing now.
    ResetTopic(t, epoch);
    t->synced_from = from;
  } else {
    t->epoch = epoch;
    if (from > Tail(t)) {
      // The store could not back-fill up to here: subscribers behind this
      // point missed events and must resume (and learn of the gap).
      for (Subscription* s : t->subscribers)
        if (!s->catching_up()) s->Close(CloseReason::kUnavailable);
      t->synced_from = from;
    } else if (!t->synced) {
      t->synced_from = std::max(t->synced_from, from);
    }
  }
  t->synced = true;
  std::vector<Subscription*> waiting;
  waiting.swap(t->waiting);
  for (Subscription* s : waiting) s->Resolve();
}

void HubImpl::Restarted(const std::string& topic, uint64_t epoch,
                        pubsub::Position from) {
  Topic* t = FindTopic(topic);
  if (!t || !t->watched) return;
  Log(LogLevel::kWarning, "topic '" + topic +
                              "': its stream started over (offsets begin "
                              "anew); closing its subscribers");
  // Like a new epoch: the subscribers come back with cursors of the old
  // stream, which the store then reports as ahead of its end (a gap).
  ResetTopic(t, epoch);
  t->synced_from = from;
  t->synced = true;
  std::vector<Subscription*> waiting;
  waiting.swap(t->waiting);
  for (Subscription* s : waiting) s->Resolve();
}

void HubImpl::ExpansionChanged(const std::string& topic) {
  std::vector<Subscription*> asked;
  sessions_.ForEach([&](Subscription* s) {
    if (!s->closed() && s->expanded_from(topic)) asked.push_back(s);
  });
  if (asked.empty()) return;
  Log(LogLevel::kInfo, "topic '" + topic +
                           "' is served by more store topics "
                           "now; ending its " +
                           std::to_string(asked.size()) +
                           " stream(s), they resume with their cursor");
  for (Subscription* s : asked) s->Close(CloseReason::kRegrouped);
}

pubsub::Position HubImpl::LastPosition(const std::string& topic,
                                       uint64_t* epoch) {
  Topic* t = FindTopic(topic);
  if (!t) {
    *epoch = 0;
    return {};
  }
  *epoch = t->epoch;
  return Tail(t);
}

void HubImpl::LinkChanged(bool up) {
  if (up == link_up_) return;
  link_up_ = up;
  // Pages fetched before a drop may predate a wipe this node missed.
  if (!up) fetch_share_->Clear();
  Log(up ? LogLevel::kInfo : LogLevel::kWarning,
      up ? "backend link up" : "backend link down");
}

void HubImpl::FanOut(Topic* t) {
  // Index loop: a Pump may close a session, which only marks it (the
  // vector is changed by OnReap, later).
  for (size_t i = 0; i < t->subscribers.size(); ++i) {
    Subscription* s = t->subscribers[i];
    if (s->closed()) continue;
    if (!s->catching_up())
      s->Pump();
    else if (s->FellBehindHistory())
      s->Close(CloseReason::kSlowConsumer);  // behind, and not reading
  }
}

void HubImpl::AddSession(Subscription* s) {
  sessions_.PushBack(s);
  ++stats_.connections_active;
  ++stats_.connections_total;
}

void HubImpl::Subscribe(Subscription* s, Topic* t) {
  s->subs.back().topic = t;
  s->subs.back().slot = static_cast<uint32_t>(t->subscribers.size());
  t->subscribers.push_back(s);
  if (Backend* b = backend_.load(); b && !t->watched) {
    t->watched = true;
    t->synced = false;
    b->Watch(t->name);
  }
  Retouch(t, true);
}

void HubImpl::Retire(Subscription* s) {
  sessions_.Remove(s);
  graveyard_.push_back(s);
  reap_event_.Activate();
}

namespace {
// See HubImpl::NoteFreed. 1 MiB is the default max_queued_bytes: one
// slow reader's queue.
constexpr size_t kTrimAfterBytes = 1 << 20;
constexpr int64_t kTrimDelayMs = 200;
}  // namespace

void HubImpl::NoteFreed(size_t bytes) {
  freed_since_trim_ += bytes;
  if (freed_since_trim_ >= kTrimAfterBytes && !trim_timer_.pending())
    trim_timer_.AfterMs(kTrimDelayMs);
}

void HubImpl::OnTrim(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HubImpl*>(arg);
  self->freed_since_trim_ = 0;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

void HubImpl::OnReap(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HubImpl*>(arg);
  std::vector<Subscription*> dead;
  dead.swap(self->graveyard_);
  for (Subscription* s : dead) {
    for (const Subscription::Sub& sub : s->subs) {
      auto& v = sub.topic->subscribers;
      Subscription* moved = v.back();
      v[sub.slot] = moved;
      v.pop_back();
      if (moved != s) {
        for (Subscription::Sub& m : moved->subs)
          if (m.topic == sub.topic) m.slot = sub.slot;
      }
      Topic* t = sub.topic;
      auto& w = t->waiting;
      w.erase(std::remove(w.begin(), w.end(), s), w.end());
      if (self->closing_) continue;
      if (t->subscribers.empty() && t->watched) {
        // Nobody here follows it: stop the feed. The history kept is
        // complete only up to now; a later watch syncs afresh.
        t->watched = false;
        t->synced = false;
        t->synced_from = self->Tail(t);
        if (Backend* b = self->backend_.load()) b->Unwatch(t->name);
      }
      // Its last use ends now; a topic with no history left is forgotten.
      self->Retouch(t, true);
    }
    delete s;
  }
  if (!self->closing_) self->MaybeFinishShutdown();
}

void HubImpl::Shutdown(Millis deadline, std::function<void()> done) {
  if (done) shutdown_done_.push_back(std::move(done));
  if (draining_) {
    MaybeFinishShutdown();
    return;
  }
  draining_ = true;
  size_t n = sessions_.size();
  if (n == 0) {
    MaybeFinishShutdown();
    return;
  }
  // Spread the closes over the deadline so that clients do not all
  // reconnect (to another node) at the same instant.
  constexpr size_t kMaxWaves = 10;
  wave_size_ = (n + kMaxWaves - 1) / kMaxWaves;
  size_t waves = (n + wave_size_ - 1) / wave_size_;
  wave_interval_ms_ =
      std::max<int64_t>(deadline.count(), 0) / static_cast<int64_t>(waves);
  OnWave(-1, 0, this);
}

void HubImpl::OnWave(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HubImpl*>(arg);
  for (size_t i = 0; i < self->wave_size_; ++i) {
    Subscription* s = self->sessions_.front();
    if (!s) break;
    s->Close(CloseReason::kShutdown);
  }
  if (!self->sessions_.empty())
    self->wave_timer_.AfterMs(self->wave_interval_ms_);
}

void HubImpl::MaybeFinishShutdown() {
  if (draining_ && sessions_.empty() && graveyard_.empty() &&
      !shutdown_done_.empty())
    done_event_.Activate();
}

void HubImpl::OnShutdownDone(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<HubImpl*>(arg);
  std::vector<std::function<void()>> done;
  done.swap(self->shutdown_done_);
  for (auto& d : done) d();
}

AuthDecision HubImpl::Authorize(const AuthHook& hook, const Request& request) {
  try {
    return hook(request);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, std::string("auth hook threw: ") + e.what());
  } catch (...) {
    Log(LogLevel::kError, "auth hook threw a non-standard exception");
  }
  return AuthDecision::Deny(403, "authorization failed");
}

HubStats HubImpl::Stats() const {
  HubStats s = stats_;
  if (Backend* b = backend_.load()) {
    BackendStats bs = b->backend_stats();
    s.backend_attached = true;
    s.backend = bs;
  }
  s.replay_page_requests = fetch_share_->requests();
  s.replay_pages_shared = fetch_share_->shared();
  s.topics = topics_.size();
  s.history_events = meter_.events;
  s.history_bytes = meter_.bytes;
  return s;
}

void HubImpl::Log(LogLevel level, const std::string& message) {
  if (LogEnabled(level)) options_.log(level, message);
}

}  // namespace internal

Result<std::unique_ptr<Hub>> Hub::Create(event_base* base, HubOptions options) {
  if (!base) return InvalidArgumentError("event_base is null");
  if (Status s = Validate(options); !s.ok()) return s;
  std::unique_ptr<Hub> hub(new Hub);
  hub->impl_ = std::make_unique<Impl>(base, std::move(options));
  if (!hub->impl_->scratch())
    return InternalError("cannot allocate an evbuffer");
  // Without its wake-up descriptor no publish would ever reach the loop.
  if (int e = hub->impl_->wake_error(); e != 0)
    return UnavailableError(std::string("cannot make the Hub's wake-up "
                                        "eventfd: ") +
                            std::strerror(e));
  return hub;
}

Hub::~Hub() = default;

Status Hub::Publish(std::string_view topic, Message message,
                    PublishCallback done) {
  return impl_->Publish(topic, std::move(message), std::move(done));
}

Result<Handler*> Hub::AddStreamEndpoint(StreamOptions options) {
  if (Status s = Validate(options); !s.ok()) return s;
  auto ep = std::make_unique<internal::StreamEndpoint>(impl_.get(),
                                                       std::move(options));
  Handler* raw = ep.get();
  impl_->endpoints.push_back(std::move(ep));
  return raw;
}

Result<Handler*> Hub::AddPublishEndpoint(PublishOptions options) {
  if (Status s = Validate(options); !s.ok()) return s;
  auto ep = std::make_unique<internal::PublishEndpoint>(impl_.get(),
                                                        std::move(options));
  Handler* raw = ep.get();
  impl_->endpoints.push_back(std::move(ep));
  return raw;
}

void Hub::Shutdown(Millis deadline, std::function<void()> done) {
  impl_->Shutdown(deadline, std::move(done));
}

HubStats Hub::stats() const { return impl_->Stats(); }

BackendSink* Hub::AttachBackend(Backend* backend) {
  impl_->AttachBackend(backend);
  return impl_.get();
}

event_base* Hub::base() const { return impl_->base(); }
const HubOptions& Hub::options() const { return impl_->options(); }
uint64_t Hub::epoch() const { return impl_->epoch(); }

}  // namespace evsse
