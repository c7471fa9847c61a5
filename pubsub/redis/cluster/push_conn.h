// PushConn: a Redis connection of evsse's own, for what hiredis 0.14's
// async context cannot carry: sharded pub/sub. Its async code asserts on
// an `smessage` (it knows only message and pmessage), so a subscriber of
// SSUBSCRIBE channels reads the socket itself: a bufferevent on the Hub's
// loop, hiredis' reply reader (which parses any RESP2 reply) and hiredis'
// command formatter.
//
// Replies come in order. Pub/sub replies (arrays whose first element is
// message, smessage, ssubscribe, sunsubscribe, subscribe, unsubscribe, ...)
// are pushes and go to PushFn, including the server's own `sunsubscribe`
// when a slot moves away; any other reply answers the oldest command or
// subscription request (an error such as MOVED or CROSSSLOT refuses a
// whole request: SSUBSCRIBE's channels must share one slot). A request
// unanswered after `command_timeout`, a lost connection or a malformed
// reply fail the connection: FailFn runs once, pending requests get
// nullptr. Loop thread only. Callbacks may destroy the PushConn.
#ifndef EVSSE_REDIS_CLUSTER_PUSH_CONN_H_
#define EVSSE_REDIS_CLUSTER_PUSH_CONN_H_

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/pubsub/address.h"
#include "evsse/status.h"

struct bufferevent;
struct event;
struct event_base;
struct redisReader;
struct redisReply;

namespace evsse::redis::cluster {

class PushConn {
 public:
  using Millis = std::chrono::milliseconds;
  // ReplyFn gets the reply, or nullptr and why there is none. Exactly once.
  using ReplyFn = std::function<void(redisReply* reply, const Status& failure)>;
  // PushFn gets each pub/sub array (valid during the call only).
  using PushFn = std::function<void(const redisReply* push)>;
  using FailFn = std::function<void(const std::string& error)>;

  PushConn(event_base* base, Millis command_timeout, Millis tcp_user_timeout,
           PushFn on_push, FailFn on_fail);
  ~PushConn();
  PushConn(const PushConn&) = delete;
  PushConn& operator=(const PushConn&) = delete;

  // Open starts connecting; commands may be sent at once. An error here
  // means nothing was opened.
  Status Open(const pubsub::Address& address);
  bool open() const { return bev_ != nullptr; }

  // Command sends `argv` and calls `fn` once with its reply.
  void Command(const std::vector<std::string_view>& argv, ReplyFn fn);
  // Subscription sends `verb` (SSUBSCRIBE, SUNSUBSCRIBE, SUBSCRIBE, ...)
  // for `channels`. Each channel's confirmation is a push (PushFn sees it);
  // `done` runs once: with the last confirmation when all came, with the
  // error reply when the server refused the request, or with nullptr when
  // the connection is gone.
  void Subscription(std::string_view verb,
                    const std::vector<std::string>& channels, ReplyFn done);

  // Close drops the connection; pending commands get nullptr and `why`.
  // FailFn does not run.
  void Close(const Status& why);

  // IsPush: `reply` is a pub/sub array (exposed for tests).
  static bool IsPush(const redisReply* reply);

 private:
  struct Pending {
    ReplyFn fn;
    std::string confirms;  // a subscription: the push kind that confirms
    size_t unconfirmed = 0;
    std::chrono::steady_clock::time_point sent;
  };
  static void OnRead(bufferevent* bev, void* arg);
  static void OnEvent(bufferevent* bev, short what, void* arg);
  static void OnTimer(int fd, short what, void* arg);
  void Write(const std::vector<std::string_view>& argv);
  void Fail(const std::string& error);
  void Drop(const Status& why);
  void ArmTimer();

  event_base* base_;
  Millis command_timeout_;
  Millis tcp_user_timeout_;
  PushFn on_push_;
  FailFn on_fail_;
  std::string where_;
  bufferevent* bev_ = nullptr;
  redisReader* reader_ = nullptr;
  event* timer_;
  std::deque<Pending> pending_;  // requests awaiting answers, oldest first
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace evsse::redis::cluster

#endif  // EVSSE_REDIS_CLUSTER_PUSH_CONN_H_
