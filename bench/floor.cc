// evsse-floor: what the machine itself charges for fan-out, so that the
// server's figures can be read against a floor.
//
//  1. The CPU cost of one send() of 100 bytes to each of 1,000 connected
//     loopback sockets (TCP pairs, and AF_UNIX socketpairs for reference)
//     while a second thread drains the other ends. Reported as sends per
//     CPU-second of the sending thread (getrusage RUSAGE_THREAD). On
//     loopback the sender's send() also runs the receiver's TCP input path,
//     so this is close to the whole kernel cost of one delivery.
//  2. Kernel memory per idle TCP connection: /proc/meminfo Slab before and
//     after opening 5,000 loopback connections (both ends live in this
//     process), three times; the median is reported. Slab is machine-wide,
//     so concurrent activity adds noise.
//
// Prints one JSON line. Bounded: each send test runs --seconds (default 2).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "loop.h"
#include "proc_stats.h"

namespace evsse::bench {
namespace {

using Json = nlohmann::ordered_json;

struct Pair {
  int send_fd;
  int recv_fd;
};

double ThreadCpuSeconds(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int Listen(sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(addr), len) != 0 ||
      listen(fd, 4096) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    std::perror("listen");
    std::exit(1);
  }
  return fd;
}

// TcpPairs opens `n` loopback connections; the accepted end sends (as a
// server does), the connecting end receives.
bool TcpPairs(size_t n, std::vector<Pair>* out) {
  sockaddr_in addr;
  int lfd = Listen(&addr);
  for (size_t i = 0; i < n; ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 ||
        connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::perror("connect");
      if (c >= 0) close(c);
      close(lfd);
      return false;
    }
    int s = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (s < 0) {
      std::perror("accept");
      close(c);
      close(lfd);
      return false;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    out->push_back({s, c});
  }
  close(lfd);
  return true;
}

bool UnixPairs(size_t n, std::vector<Pair>* out) {
  for (size_t i = 0; i < n; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      std::perror("socketpair");
      return false;
    }
    out->push_back({sv[0], sv[1]});
  }
  return true;
}

void ClosePairs(std::vector<Pair>* pairs) {
  for (const Pair& p : *pairs) {
    CloseReset(p.send_fd);
    CloseReset(p.recv_fd);
  }
  pairs->clear();
}

// SendTest: rounds of one non-blocking send of `bytes` to every pair, for
// about `seconds`, with a reader thread draining the other ends.
Json SendTest(std::vector<Pair>& pairs, size_t bytes, double seconds) {
  std::atomic<bool> stop{false};
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (const Pair& p : pairs) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = p.recv_fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, p.recv_fd, &ev);
  }
  double reader_cpu = 0;
  std::thread reader([&] {
    std::vector<char> buf(64 * 1024);
    epoll_event evs[256];
    while (!stop.load(std::memory_order_relaxed)) {
      int n = epoll_wait(ep, evs, 256, 10);
      for (int i = 0; i < n; ++i)
        while (recv(evs[i].data.fd, buf.data(), buf.size(), MSG_DONTWAIT) > 0) {
        }
    }
    reader_cpu = ThreadCpuSeconds(RUSAGE_THREAD);
  });
  std::string payload(bytes, 'x');
  uint64_t sends = 0, eagain = 0, rounds = 0;
  double cpu0 = ThreadCpuSeconds(RUSAGE_THREAD);
  int64_t t0 = NowNs();
  const int64_t until = t0 + static_cast<int64_t>(seconds * 1e9);
  while (NowNs() < until) {
    for (const Pair& p : pairs) {
      ssize_t n = send(p.send_fd, payload.data(), payload.size(),
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n == static_cast<ssize_t>(payload.size()))
        ++sends;
      else
        ++eagain;
    }
    ++rounds;
  }
  double cpu = ThreadCpuSeconds(RUSAGE_THREAD) - cpu0;
  double wall = (NowNs() - t0) / 1e9;
  stop = true;
  reader.join();
  close(ep);
  Json j;
  j["rounds"] = rounds;
  j["sends"] = sends;
  j["eagain"] = eagain;
  j["sender_cpu_s"] = std::round(cpu * 1000) / 1000;
  j["reader_cpu_s"] = std::round(reader_cpu * 1000) / 1000;
  j["wall_s"] = std::round(wall * 1000) / 1000;
  j["sends_per_cpu_s"] = cpu > 0 ? std::round(sends / cpu) : 0.0;
  j["ns_per_send"] = sends > 0 ? std::round(cpu * 1e9 / sends) : 0.0;
  j["sends_per_wall_s"] = std::round(sends / wall);
  return j;
}

// IdleMemory: Slab delta over `n` idle loopback connections, `repeats`
// times.
Json IdleMemory(size_t n, int repeats) {
  std::vector<double> per_conn;
  std::vector<int64_t> tcp_mem;
  for (int r = 0; r < repeats; ++r) {
    int64_t slab0 = MeminfoKb("Slab");
    int64_t mem0 = SockstatTcpMemPages();
    std::vector<Pair> pairs;
    pairs.reserve(n);
    if (!TcpPairs(n, &pairs)) break;
    usleep(300 * 1000);
    int64_t slab1 = MeminfoKb("Slab");
    int64_t mem1 = SockstatTcpMemPages();
    ClosePairs(&pairs);
    usleep(300 * 1000);
    per_conn.push_back(static_cast<double>(slab1 - slab0) * 1024.0 /
                       static_cast<double>(n));
    tcp_mem.push_back(mem1 - mem0);
  }
  Json j;
  j["connections"] = n;
  j["slab_bytes_per_connection_runs"] = per_conn;
  std::vector<double> sorted = per_conn;
  std::sort(sorted.begin(), sorted.end());
  double median = sorted.empty() ? 0 : sorted[sorted.size() / 2];
  j["slab_bytes_per_connection"] = std::round(median);
  j["slab_bytes_per_socket"] = std::round(median / 2);
  j["sockstat_tcp_mem_pages_delta"] = tcp_mem;
  return j;
}

}  // namespace
}  // namespace evsse::bench

int main(int argc, char** argv) {
  using namespace evsse::bench;
  size_t connections = 1000, bytes = 100, idle = 5000;
  double seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--connections")
      connections = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--bytes")
      bytes = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--idle-connections")
      idle = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr,
                   "usage: evsse-floor [--connections 1000] [--bytes 100] "
                   "[--seconds 2] [--idle-connections 5000]\n");
      return 2;
    }
  }
  RaiseFdLimit();
  Json out;
  out["name"] = "floor";
  out["connections"] = connections;
  out["bytes"] = bytes;
  std::vector<Pair> pairs;
  if (!TcpPairs(connections, &pairs)) return 1;
  out["tcp"] = SendTest(pairs, bytes, seconds);
  ClosePairs(&pairs);
  if (!UnixPairs(connections, &pairs)) return 1;
  out["unix"] = SendTest(pairs, bytes, seconds);
  ClosePairs(&pairs);
  if (idle > 0) out["idle_tcp"] = IdleMemory(idle, 3);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
