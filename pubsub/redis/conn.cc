#include "conn.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace evsse::redis {

struct Conn::Op {
  Conn* conn;
  ReplyFn fn;
};

// Keepalive (hiredis' own: first probe after 15 s idle, dead after about
// 30 s) finds a dead peer on a connection with nothing to send; the user
// timeout bounds how long unacknowledged bytes (a command, a keepalive
// probe) are retried, instead of the kernel's ~15 minutes. Failures are
// ignored: the link's own probes and command timeout still find the cut.
void HardenSocket(int fd, Millis tcp_user_timeout) {
  int on = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  int idle = REDIS_KEEPALIVE_INTERVAL;
  int interval = std::max(REDIS_KEEPALIVE_INTERVAL / 3, 1);
  int count = 3;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  if (tcp_user_timeout.count() > 0) {
    unsigned int ms = static_cast<unsigned int>(tcp_user_timeout.count());
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
  }
}

timeval ToTimeval(std::chrono::steady_clock::duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 0) us = 0;
  return timeval{static_cast<time_t>(us / 1000000),
                 static_cast<suseconds_t>(us % 1000000)};
}

Conn::Conn(event_base* base, Millis command_timeout, Millis tcp_user_timeout,
           FailFn on_fail)
    : base_(base),
      command_timeout_(command_timeout),
      tcp_user_timeout_(tcp_user_timeout),
      on_fail_(std::move(on_fail)),
      timer_(evtimer_new(base, &Conn::OnTimer, this)) {}

Conn::~Conn() {
  Close(CancelledError("redis link closed"));
  event_free(timer_);
}

Status Conn::Open(const Address& address) {
  where_ = address.text;
  redisAsyncContext* ac =
      address.is_unix ? redisAsyncConnectUnix(address.path.c_str())
                      : redisAsyncConnect(address.host.c_str(), address.port);
  if (ac == nullptr)
    return UnavailableError("connect to " + where_ + ": no memory");
  // hiredis reports some failures (a missing socket file) synchronously;
  // such a context has no connection and is freed here, before any hook.
  if (ac->err != 0) {
    std::string error = ac->errstr;
    redisAsyncFree(ac);
    return UnavailableError("connect to " + where_ + ": " + error);
  }
  if (!address.is_unix) HardenSocket(ac->c.fd, tcp_user_timeout_);
  ac->data = this;
  redisLibeventAttach(ac, base_);
  redisAsyncSetConnectCallback(ac, &Conn::OnConnect);
  redisAsyncSetDisconnectCallback(ac, &Conn::OnDisconnect);
  ctx_ = ac;
  return Status::Ok();
}

void Conn::Command(const std::vector<std::string_view>& argv, ReplyFn fn) {
  if (ctx_ == nullptr) {
    fn(nullptr, UnavailableError("not connected"));
    return;
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (std::string_view a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* op = new Op{this, std::move(fn)};
  if (redisAsyncCommandArgv(ctx_, &Conn::OnReply, op,
                            static_cast<int>(args.size()), args.data(),
                            lens.data()) != REDIS_OK) {
    std::unique_ptr<Op> owned(op);
    owned->fn(nullptr, UnavailableError("connection closing"));
    return;
  }
  Sent(1);
}

bool Conn::Subscription(std::string_view verb,
                        const std::vector<std::string>& channels,
                        redisCallbackFn* fn, void* privdata) {
  if (ctx_ == nullptr || channels.empty()) return false;
  std::vector<const char*> args{verb.data()};
  std::vector<size_t> lens{verb.size()};
  for (const std::string& c : channels) {
    args.push_back(c.data());
    lens.push_back(c.size());
  }
  if (redisAsyncCommandArgv(ctx_, fn, privdata, static_cast<int>(args.size()),
                            args.data(), lens.data()) != REDIS_OK) {
    return false;
  }
  Sent(channels.size());
  return true;
}

void Conn::Confirmed() { Answered(); }

void Conn::Close(const Status& failure) {
  awaited_.clear();
  evtimer_del(timer_);
  if (ctx_ == nullptr) return;
  redisAsyncContext* ac = ctx_;
  ctx_ = nullptr;  // OnDisconnect then knows this close is ours
  closing_ = &failure;
  redisAsyncFree(ac);  // pending callbacks run now, with nullptr
  closing_ = nullptr;
}

void Conn::Sent(size_t replies) {
  auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < replies; ++i) awaited_.push_back(now);
  if (!evtimer_pending(timer_, nullptr)) {
    timeval tv = ToTimeval(command_timeout_);
    evtimer_add(timer_, &tv);
  }
}

void Conn::Answered() {
  if (!awaited_.empty()) awaited_.pop_front();
}

void Conn::Lost(const std::string& error) {
  awaited_.clear();
  evtimer_del(timer_);
  on_fail_(error);
}

void Conn::OnReply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<Op> op(static_cast<Op*>(privdata));
  Conn* self = op->conn;
  if (reply != nullptr) {
    self->Answered();
    op->fn(static_cast<redisReply*>(reply), Status::Ok());
    return;
  }
  if (self->closing_ != nullptr) {
    op->fn(nullptr, *self->closing_);
    return;
  }
  // hiredis is freeing a failed context (connection refused or lost).
  std::string why = ac->errstr != nullptr && ac->errstr[0] != '\0'
                        ? ac->errstr
                        : "connection lost";
  op->fn(nullptr, UnavailableError("redis link down (" + why + ")"));
}

void Conn::OnConnect(const redisAsyncContext* ac, int status) {
  if (status == REDIS_OK) return;
  auto* self = static_cast<Conn*>(ac->data);
  if (self->ctx_ != ac) return;
  // hiredis frees the context when this returns; ac->err is still 0 here,
  // the reason is in ac->c.
  self->ctx_ = nullptr;
  self->Lost("connect to " + self->where_ + ": " + ac->c.errstr);
}

void Conn::OnDisconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<Conn*>(ac->data);
  if (self->ctx_ != ac) return;  // our own Close
  self->ctx_ = nullptr;          // hiredis frees it when this returns
  std::string why =
      status == REDIS_OK || ac->errstr == nullptr || ac->errstr[0] == '\0'
          ? "closed by the server"
          : ac->errstr;
  self->Lost("connection to " + self->where_ + " lost: " + why);
}

void Conn::OnTimer(int, short, void* arg) {
  auto* self = static_cast<Conn*>(arg);
  if (self->awaited_.empty() || self->ctx_ == nullptr) return;
  auto age = std::chrono::steady_clock::now() - self->awaited_.front();
  if (age >= self->command_timeout_) {
    self->Lost("command timed out after " +
               std::to_string(self->command_timeout_.count()) + " ms");
    return;
  }
  timeval tv = ToTimeval(self->command_timeout_ - age);
  evtimer_add(self->timer_, &tv);
}

}  // namespace evsse::redis
