// Conn: one hiredis async connection on a libevent base, plus what hiredis
// 0.14 lacks: a command timeout (its async API has no timeouts at all), and
// on TCP keepalive and TCP_USER_TIMEOUT, so that the kernel gives up on a
// peer that stopped acknowledging.
// Loop thread only.
//
// Ownership: Conn owns its redisAsyncContext; a context that fails is freed
// by hiredis itself, one that is closed is freed by Close. Close must not be
// called inside a callback of this connection (hiredis would free the
// context under its own feet): the owner defers it.
#ifndef EVSSE_REDIS_CONN_H_
#define EVSSE_REDIS_CONN_H_

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <sys/time.h>

#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "address.h"
#include "evsse/redis.h"
#include "evsse/status.h"

struct event;
struct event_base;

namespace evsse::redis {

// ToTimeval: a libevent timeout from a duration (negative: 0), the one
// conversion of the Redis link's timers.
timeval ToTimeval(std::chrono::steady_clock::duration d);

// HardenSocket sets keepalive and TCP_USER_TIMEOUT on a connecting TCP
// socket (0: the kernel's default user timeout). Failures are ignored.
void HardenSocket(int fd, Millis tcp_user_timeout);

class Conn {
 public:
  // ReplyFn gets the reply, or nullptr and why there is none (the
  // connection failed or was closed). It fires exactly once.
  using ReplyFn = std::function<void(redisReply* reply, const Status& failure)>;
  // FailFn: the connection failed (connect error, connection lost, a
  // command past the timeout). It runs inside hiredis or timer callbacks;
  // the owner must defer any Close.
  using FailFn = std::function<void(const std::string& error)>;

  // tcp_user_timeout: TCP_USER_TIMEOUT of TCP connections (0: the kernel's
  // default).
  Conn(event_base* base, Millis command_timeout, Millis tcp_user_timeout,
       FailFn on_fail);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Open starts connecting (commands may be sent at once). An error here
  // (e.g. no such socket file) means nothing was opened.
  Status Open(const Address& address);
  bool open() const { return ctx_ != nullptr; }

  // Command sends `argv` (binary-safe) and calls `fn` once with the reply;
  // when the command cannot be sent, `fn` runs at once with nullptr.
  void Command(const std::vector<std::string_view>& argv, ReplyFn fn);

  // Subscription sends SUBSCRIBE or UNSUBSCRIBE for `channels`; every
  // confirmation and message goes to `fn` with `privdata` (a NULL reply at
  // teardown, once per channel). The owner calls Confirmed() per
  // confirmation so that the command timeout covers them. False: not sent.
  bool Subscription(std::string_view verb,
                    const std::vector<std::string>& channels,
                    redisCallbackFn* fn, void* privdata);
  void Confirmed();

  // Close frees the context; pending callbacks get nullptr and `failure`.
  void Close(const Status& failure);

 private:
  struct Op;
  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnConnect(const redisAsyncContext* ac, int status);
  static void OnDisconnect(const redisAsyncContext* ac, int status);
  static void OnTimer(int fd, short what, void* arg);
  void Sent(size_t replies);
  void Answered();
  void Lost(const std::string& error);

  event_base* base_;
  Millis command_timeout_;
  Millis tcp_user_timeout_;
  FailFn on_fail_;
  redisAsyncContext* ctx_ = nullptr;
  std::string where_;  // the address, for messages
  // Send times of the replies still awaited, oldest first.
  std::deque<std::chrono::steady_clock::time_point> awaited_;
  event* timer_;
  const Status* closing_ = nullptr;  // set while Close frees the context
};

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_CONN_H_
