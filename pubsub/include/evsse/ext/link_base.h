// Extension seam (for store writers): what every store link (evsse::redis,
// its Cluster link, evsse::kafka) does the same way around its own
// connections: the lifetime rule of backend.h (HubGone, a destructor that
// detaches first, an idempotent Close) and the queue of callbacks it owes
// its callers. Store-neutral: no loop library, no store.
#ifndef EVSSE_EXT_LINK_BASE_H_
#define EVSSE_EXT_LINK_BASE_H_

#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "evsse/ext/backend.h"

namespace evsse {

// Completions: callbacks a link owes (a publish's done, a fetch's answer),
// queued to run later on the link's loop, never inside the call that owed
// them. The link wakes its loop itself after Push (its own event).
class Completions {
 public:
  void Push(std::function<void()> fn) { queue_.push_back(std::move(fn)); }
  bool empty() const { return queue_.empty(); }

  // RunBatch: one loop turn's flush: what is queued now runs, in order;
  // what those callbacks queue waits for the next flush.
  void RunBatch() {
    std::deque<std::function<void()>> batch;
    batch.swap(queue_);
    for (auto& fn : batch) fn();
  }

  // RunAll: the link is closing: everything runs, also what the callbacks
  // queue meanwhile, until nothing is left.
  void RunAll() {
    while (!queue_.empty()) {
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
    }
  }

 private:
  std::deque<std::function<void()>> queue_;
};

// LinkBase: a store's link with backend.h's lifetime rule written once.
// Base: the store's BackendLink (a Backend, and the store's Link); Env: the
// store's LinkEnv; it has `detach` (run first thing in the
// destructor, when set) and `log` (one line per state change, may be
// empty).
//
// The store implements OnClose (stop for good: pending callbacks fire with
// kCancelled, nothing calls the sink again) and calls Gone() first thing in
// its destructor. Close runs OnClose once, whoever calls first: HubGone (the
// Hub goes before the link: no detach) or the destructor.
template <class Base, class Env>
class LinkBase : public Base {
 public:
  void HubGone() override {
    env_.detach = nullptr;  // the Hub is going: nothing to detach from
    Close();
  }

 protected:
  explicit LinkBase(Env env) : env_(std::move(env)) {}

  // Gone: the store's destructor, first thing: detach from the Hub if it is
  // still there, then close.
  void Gone() {
    if (env_.detach) env_.detach();
    Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    OnClose();
  }
  // closed: Close ran (HubGone or the destructor); set before OnClose runs,
  // so the callbacks it fires see it.
  bool closed() const { return closed_; }

  virtual void OnClose() = 0;

  void Log(const std::string& line) const {
    if (env_.log) env_.log(line);
  }

  Env env_;

 private:
  bool closed_ = false;
};

}  // namespace evsse

#endif  // EVSSE_EXT_LINK_BASE_H_
