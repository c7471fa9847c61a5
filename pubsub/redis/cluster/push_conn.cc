#include "push_conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cctype>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../conn.h"

namespace evsse::redis::cluster {
namespace {

std::string_view Str(const redisReply* r) {
  return std::string_view(r->str, r->len);
}

}  // namespace

bool PushConn::IsPush(const redisReply* reply) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_STRING) {
    return false;
  }
  static constexpr std::string_view kKinds[] = {
      "message",    "pmessage",    "smessage",     "subscribe",   "psubscribe",
      "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"};
  std::string_view kind = Str(reply->element[0]);
  for (std::string_view k : kKinds) {
    if (kind == k) return true;
  }
  return false;
}

PushConn::PushConn(event_base* base, Millis command_timeout,
                   Millis tcp_user_timeout, PushFn on_push, FailFn on_fail)
    : base_(base),
      command_timeout_(command_timeout),
      tcp_user_timeout_(tcp_user_timeout),
      on_push_(std::move(on_push)),
      on_fail_(std::move(on_fail)),
      timer_(evtimer_new(base, &PushConn::OnTimer, this)) {}

PushConn::~PushConn() {
  *alive_ = false;
  Drop(CancelledError("redis link closed"));
  event_free(timer_);
}

Status PushConn::Open(const pubsub::Address& address) {
  Drop(CancelledError("reopened"));
  where_ = address.text;
  bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev_ == nullptr)
    return UnavailableError("connect to " + where_ + ": no memory");
  bufferevent_setcb(bev_, &PushConn::OnRead, nullptr, &PushConn::OnEvent, this);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  int rc;
  if (address.is_unix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (address.path.size() >= sizeof(sun.sun_path)) {
      Drop(CancelledError("bad address"));
      return InvalidArgumentError("connect to " + where_ + ": path too long");
    }
    std::memcpy(sun.sun_path, address.path.c_str(), address.path.size() + 1);
    rc = bufferevent_socket_connect(bev_, reinterpret_cast<sockaddr*>(&sun),
                                    sizeof(sun));
  } else {
    // No DNS base: a name is resolved synchronously, as hiredis does.
    rc = bufferevent_socket_connect_hostname(
        bev_, nullptr, AF_UNSPEC, address.host.c_str(), address.port);
  }
  if (rc != 0) {
    std::string why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    Drop(CancelledError("connect failed"));
    return UnavailableError("connect to " + where_ + ": " + why);
  }
  if (!address.is_unix)
    HardenSocket(bufferevent_getfd(bev_), tcp_user_timeout_);
  reader_ = redisReaderCreate();
  return Status::Ok();
}

void PushConn::Write(const std::vector<std::string_view>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (std::string_view a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  int len = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()),
                                   args.data(), lens.data());
  if (len > 0) {
    evbuffer_add(bufferevent_get_output(bev_), cmd, static_cast<size_t>(len));
  }
  redisFreeCommand(cmd);
}

void PushConn::Command(const std::vector<std::string_view>& argv, ReplyFn fn) {
  if (bev_ == nullptr) {
    fn(nullptr, UnavailableError("not connected"));
    return;
  }
  Write(argv);
  pending_.push_back(
      Pending{std::move(fn), "", 0, std::chrono::steady_clock::now()});
  ArmTimer();
}

void PushConn::Subscription(std::string_view verb,
                            const std::vector<std::string>& channels,
                            ReplyFn done) {
  if (bev_ == nullptr || channels.empty()) {
    done(nullptr,
         UnavailableError(bev_ == nullptr ? "not connected" : "no channels"));
    return;
  }
  std::vector<std::string_view> argv{verb};
  for (const std::string& c : channels) argv.push_back(c);
  Write(argv);
  std::string kind(verb);
  for (char& c : kind)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  pending_.push_back(Pending{std::move(done), std::move(kind), channels.size(),
                             std::chrono::steady_clock::now()});
  ArmTimer();
}

void PushConn::Close(const Status& why) { Drop(why); }

void PushConn::Drop(const Status& why) {
  evtimer_del(timer_);
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  std::deque<Pending> pending;
  pending.swap(pending_);
  std::weak_ptr<bool> alive = alive_;
  for (Pending& p : pending) {
    p.fn(nullptr, why);
    if (alive.expired() || !*alive.lock()) return;
  }
}

void PushConn::Fail(const std::string& error) {
  std::weak_ptr<bool> alive = alive_;
  Drop(UnavailableError("redis link down (" + error + ")"));
  if (alive.expired() || !*alive.lock()) return;
  on_fail_(error);
}

void PushConn::ArmTimer() {
  if (!evtimer_pending(timer_, nullptr)) {
    timeval tv = ToTimeval(command_timeout_);
    evtimer_add(timer_, &tv);
  }
}

void PushConn::OnRead(bufferevent* bev, void* arg) {
  auto* self = static_cast<PushConn*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  std::weak_ptr<bool> alive = self->alive_;
  while (evbuffer_get_length(in) > 0) {
    size_t n = evbuffer_get_contiguous_space(in);
    const char* data = reinterpret_cast<const char*>(
        evbuffer_pullup(in, static_cast<ssize_t>(n)));
    redisReaderFeed(self->reader_, data, n);
    evbuffer_drain(in, n);
  }
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(self->reader_, &raw) != REDIS_OK) {
      self->Fail("connection to " + self->where_ + ": protocol error (" +
                 std::string(self->reader_->errstr) + ")");
      return;
    }
    if (raw == nullptr) return;
    std::unique_ptr<redisReply, void (*)(void*)> reply(
        static_cast<redisReply*>(raw), &freeReplyObject);
    if (IsPush(reply.get())) {
      // A confirmation of the oldest request counts towards it; the
      // server's own sunsubscribe (a slot moved away) is only handed on.
      std::string_view kind = Str(reply->element[0]);
      bool confirms = !self->pending_.empty() &&
                      self->pending_.front().unconfirmed > 0 &&
                      kind == self->pending_.front().confirms;
      self->on_push_(reply.get());
      if (alive.expired() || !*alive.lock() || self->bev_ == nullptr) return;
      if (confirms && --self->pending_.front().unconfirmed == 0) {
        Pending p = std::move(self->pending_.front());
        self->pending_.pop_front();
        p.fn(reply.get(), Status::Ok());
      }
    } else if (!self->pending_.empty()) {
      Pending p = std::move(self->pending_.front());
      self->pending_.pop_front();
      p.fn(reply.get(), Status::Ok());
    } else {
      self->Fail("connection to " + self->where_ + ": unexpected reply");
      return;
    }
    if (alive.expired() || !*alive.lock() || self->bev_ == nullptr) return;
  }
}

void PushConn::OnEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<PushConn*>(arg);
  if (what & BEV_EVENT_CONNECTED) return;
  std::string why;
  if (what & BEV_EVENT_EOF) {
    why = "closed by the server";
  } else {
    int dns = self->bev_ != nullptr
                  ? bufferevent_socket_get_dns_error(self->bev_)
                  : 0;
    why = dns != 0 ? evutil_gai_strerror(dns)
                   : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  }
  self->Fail("connection to " + self->where_ + " lost: " + why);
}

void PushConn::OnTimer(int, short, void* arg) {
  auto* self = static_cast<PushConn*>(arg);
  if (self->bev_ == nullptr || self->pending_.empty()) return;
  auto age = std::chrono::steady_clock::now() - self->pending_.front().sent;
  if (age >= self->command_timeout_) {
    self->Fail("command timed out after " +
               std::to_string(self->command_timeout_.count()) + " ms");
    return;
  }
  timeval tv = ToTimeval(self->command_timeout_ - age);
  evtimer_add(self->timer_, &tv);
}

}  // namespace evsse::redis::cluster
