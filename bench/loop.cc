#include "loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace evsse::bench {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Loop::Loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {}

Loop::~Loop() {
  if (epfd_ >= 0) close(epfd_);
}

bool Loop::Add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Loop::Modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

int Loop::Poll(int timeout_ms) {
  int n = epoll_wait(epfd_, events_, sizeof events_ / sizeof events_[0],
                     timeout_ms);
  for (int i = 0; i < n; ++i)
    static_cast<IoHandler*>(events_[i].data.ptr)->OnIo(events_[i].events);
  return n < 0 ? 0 : n;
}

int OpenConnect(const sockaddr_in& addr, bool* in_progress, int rcvbuf,
                const sockaddr_in* source) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  if ((rcvbuf > 0 &&
       setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) ||
      (source != nullptr && (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
                                        &one, sizeof one) != 0 ||
                             bind(fd, reinterpret_cast<const sockaddr*>(source),
                                  sizeof *source) != 0))) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  *in_progress = false;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    return fd;
  if (errno == EINPROGRESS) {
    *in_progress = true;
    return fd;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

int ConnectError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void CloseReset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

uint64_t RaiseFdLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
  getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

bool ResolveIpv4(const std::string& host, int port, sockaddr_in* out) {
  *out = sockaddr_in{};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(port));
  return port > 0 && port < 65536 &&
         inet_pton(AF_INET, host.c_str(), &out->sin_addr) == 1;
}

}  // namespace evsse::bench
