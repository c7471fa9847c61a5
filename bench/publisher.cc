#include "publisher.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "http_codec.h"

namespace evsse::bench {

Publisher::Publisher(Loop* loop, Observer* observer)
    : loop_(loop), observer_(observer) {}

Publisher::~Publisher() {
  TlsFree(ssl_);
  if (fd_ >= 0) close(fd_);
}

bool Publisher::Connect(const sockaddr_in& addr, const TlsContext* tls,
                        std::string* error) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || connect(fd_, reinterpret_cast<const sockaddr*>(&addr),
                         sizeof addr) != 0) {
    *error = std::string("publisher connect: ") + std::strerror(errno);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return false;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (tls != nullptr) {
    bool want_write = false;
    ssl_ = tls->NewSession(fd_);
    if (ssl_ == nullptr || TlsHandshake(ssl_, &want_write) <= 0) {
      *error = "publisher TLS handshake: " +
               (ssl_ == nullptr || errno == EPROTO
                    ? TlsLastError(ssl_)
                    : std::string(std::strerror(errno)));
      TlsFree(ssl_);
      ssl_ = nullptr;
      close(fd_);
      fd_ = -1;
      return false;
    }
  }
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  loop_->Add(fd_, EPOLLIN, this);
  return true;
}

void Publisher::Send(uint64_t seq, std::string_view request) {
  if (fd_ < 0) return;
  in_flight_.push_back(seq);
  out_.append(request.data(), request.size());
  Flush();
}

void Publisher::Flush() {
  while (fd_ >= 0 && out_off_ < out_.size()) {
    const char* p = out_.data() + out_off_;
    size_t len = out_.size() - out_off_;
    bool want_write = true;
    ssize_t n = ssl_ != nullptr ? TlsWrite(ssl_, p, len, &want_write)
                                : send(fd_, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    Fail(errno == EPROTO
             ? "publisher TLS: " + TlsLastError(ssl_)
             : std::string("publisher send: ") + std::strerror(errno));
    return;
  }
  if (fd_ < 0) return;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  bool want = out_off_ < out_.size();
  if (want != want_write_) {
    want_write_ = want;
    loop_->Modify(fd_, want ? EPOLLIN | EPOLLOUT : EPOLLIN, this);
  }
}

void Publisher::OnIo(uint32_t events) {
  if (fd_ < 0) return;
  if (events & EPOLLOUT) Flush();
  if (fd_ < 0 || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  char buf[16 * 1024];
  for (;;) {
    bool want_write = false;
    ssize_t n = ssl_ != nullptr ? TlsRead(ssl_, buf, sizeof buf, &want_write)
                                : recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      // TLS may hold more than the socket shows (read-ahead): read on.
      if (ssl_ == nullptr && static_cast<size_t>(n) < sizeof buf) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // A TLS read that must write first (rare) is retried on the next
    // request's Flush or the next readable event.
    if (n < 0 && errno == EAGAIN) break;
    ParseResponses();
    Fail(n == 0 ? "publisher: the server closed the connection"
         : errno == EPROTO
             ? "publisher TLS: " + TlsLastError(ssl_)
             : std::string("publisher recv: ") + std::strerror(errno));
    return;
  }
  ParseResponses();
}

void Publisher::ParseResponses() {
  for (;;) {
    std::string_view rest = std::string_view(in_).substr(in_off_);
    size_t end = FindHeadEnd(rest, 0);
    if (end == std::string_view::npos) break;
    ResponseHead h;
    if (!ParseResponseHead(rest.substr(0, end), &h) || h.chunked ||
        h.content_length < 0) {
      Fail("publisher: unexpected response head");
      return;
    }
    size_t body = static_cast<size_t>(h.content_length);
    if (rest.size() < end + body) break;
    if (in_flight_.empty()) {
      Fail("publisher: a response without a request");
      return;
    }
    uint64_t seq = in_flight_.front();
    in_flight_.pop_front();
    in_off_ += end + body;
    observer_->OnAck(seq, h.status, rest.substr(end, body));
    if (fd_ < 0) return;
  }
  if (in_off_ > 0 && in_off_ * 2 >= in_.size()) {
    in_.erase(0, in_off_);
    in_off_ = 0;
  }
}

void Publisher::Fail(const std::string& what) {
  if (fd_ < 0) return;
  TlsFree(ssl_);
  ssl_ = nullptr;
  close(fd_);
  fd_ = -1;
  observer_->OnPublisherError(what);
}

}  // namespace evsse::bench
