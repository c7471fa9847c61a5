// A minimal single-threaded epoll loop for the load generator, and the
// socket helpers its connections share.
//
// Thread safety: none; everything runs on the thread that owns the Loop.
#ifndef EVSSE_BENCH_LOOP_H_
#define EVSSE_BENCH_LOOP_H_

#include <netinet/in.h>
#include <sys/epoll.h>

#include <cstdint>
#include <string>

namespace evsse::bench {

// NowNs returns the steady clock in nanoseconds (shared by every process
// of the machine, so a sender's stamp is comparable with a receiver's).
int64_t NowNs();

// IoHandler receives the epoll events of one file descriptor. A handler is
// owned by its creator and must outlive its registration; a handler that
// closed its descriptor must ignore events still queued for it in the
// current batch.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void OnIo(uint32_t events) = 0;
};

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  bool Add(int fd, uint32_t events, IoHandler* handler);
  bool Modify(int fd, uint32_t events, IoHandler* handler);

  // Poll waits at most `timeout_ms` and dispatches what is ready; returns
  // the number of events dispatched.
  int Poll(int timeout_ms);

 private:
  int epfd_;
  epoll_event events_[1024];
};

// OpenConnect starts a non-blocking TCP connect to `addr`. Returns the
// descriptor (the connect may still be in progress: wait for EPOLLOUT and
// check ConnectError) or -1 with errno set. A `rcvbuf` above 0 sets
// SO_RCVBUF before the connect (so the window scale covers it). A `source`
// binds the socket to that local address first (port 0 with
// IP_BIND_ADDRESS_NO_PORT: the port is picked at connect, unique per
// 4-tuple, so each source address adds a whole ephemeral port range).
int OpenConnect(const sockaddr_in& addr, bool* in_progress, int rcvbuf = 0,
                const sockaddr_in* source = nullptr);

// ConnectError returns the pending SO_ERROR of a connecting socket.
int ConnectError(int fd);

// CloseReset closes with an RST (SO_LINGER 0): no TIME_WAIT is left behind,
// so tens of thousands of connections can be opened run after run from one
// source address.
void CloseReset(int fd);

// RaiseFdLimit raises RLIMIT_NOFILE to its hard limit; returns the new soft
// limit.
uint64_t RaiseFdLimit();

// ResolveIpv4 fills `out` for a numeric IPv4 host and a port.
bool ResolveIpv4(const std::string& host, int port, sockaddr_in* out);

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_LOOP_H_
