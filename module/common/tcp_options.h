// TCP options of a long-lived event-stream socket, shared by the server's
// stream endpoint and the client (header-only: the two libraries link
// separately).
//
// Why: a peer that vanishes without a FIN or RST (a dead host, a dropped
// route, a NAT that forgot the flow) is otherwise noticed only when the
// kernel gives up retransmitting (tcp_retries2, about 15 minutes), or never
// while nothing is sent (libevent's SO_KEEPALIVE starts probing after the
// kernel's two hours, and keepalive never probes while data is unacked).
// TCP_USER_TIMEOUT bounds how long written data may stay unacknowledged;
// keepalive, tuned to the same bound, covers a socket with nothing in
// flight. The write-stall timeout cannot do this: it only starts once the
// kernel's send buffer is full.
#ifndef EVSSE_SRC_TCP_OPTIONS_H_
#define EVSSE_SRC_TCP_OPTIONS_H_

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "evsse/status.h"

namespace evsse::internal {

// ConfigureStreamSocket sets TCP_NODELAY on `fd` (the stream coalesces its
// own writes, and Nagle's algorithm would hold a small event back for a
// round trip behind an unacknowledged one) and, when dead_peer_timeout is
// positive, TCP_USER_TIMEOUT to it and keepalive probes that give up after
// about the same time: first probe after half of it, then three probes a
// sixth of it apart (whole seconds, at least 1). With TCP_USER_TIMEOUT set,
// Linux drops a probing connection once nothing was received for that long,
// so the bound holds for idle and busy sockets alike. Zero leaves keepalive
// and the user timeout at the kernel's defaults. A socket that is not TCP
// (AF_UNIX, or fd < 0) is left alone and is not an error.
inline Status ConfigureStreamSocket(
    int fd, std::chrono::milliseconds dead_peer_timeout) {
  if (fd < 0) return Status::Ok();
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
    return InternalError(std::string("getsockopt(SO_DOMAIN): ") +
                         std::strerror(errno));
  if (domain != AF_INET && domain != AF_INET6) return Status::Ok();
  auto set = [fd](int level, int name, int value, const char* what) {
    if (setsockopt(fd, level, name, &value, sizeof value) == 0)
      return Status::Ok();
    return InternalError(std::string("setsockopt(") + what +
                         "): " + std::strerror(errno));
  };
  if (Status s = set(IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"); !s.ok())
    return s;
  const long long ms = dead_peer_timeout.count();
  if (ms <= 0) return Status::Ok();
  const int user_timeout = static_cast<int>(std::min<long long>(ms, 1 << 30));
  const int idle = static_cast<int>(std::max<long long>(1, ms / 2000));
  const int interval = static_cast<int>(std::max<long long>(1, ms / 6000));
  for (Status s :
       {set(IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout, "TCP_USER_TIMEOUT"),
        set(SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"),
        set(IPPROTO_TCP, TCP_KEEPIDLE, idle, "TCP_KEEPIDLE"),
        set(IPPROTO_TCP, TCP_KEEPINTVL, interval, "TCP_KEEPINTVL"),
        set(IPPROTO_TCP, TCP_KEEPCNT, 3, "TCP_KEEPCNT")})
    if (!s.ok()) return s;
  return Status::Ok();
}

}  // namespace evsse::internal

#endif  // EVSSE_SRC_TCP_OPTIONS_H_
