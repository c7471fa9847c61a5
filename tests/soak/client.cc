// The client side of evsse-soak: blocking loopback sockets with receive
// timeouts, so a server that stops answering fails the run instead of
// hanging it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "soak.h"

namespace evsse::soak {
namespace {

int Connect(int port, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;  // the server may refuse mid-request
    off += static_cast<size_t>(n);
  }
  return true;
}

// ReadUntil reads into *in until it holds `needle` `count` times; false on
// close or timeout.
bool ReadUntil(int fd, std::string* in, const std::string& needle,
               size_t count = 1) {
  auto have = [&] {
    size_t n = 0;
    for (size_t p = in->find(needle); p != std::string::npos;
         p = in->find(needle, p + 1))
      ++n;
    return n >= count;
  };
  char buf[16384];
  while (!have()) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// ReadToClose reads until EOF or reset; false on timeout.
bool ReadToClose(int fd, std::string* in) {
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return false;
    if (in->size() < (1 << 20)) in->append(buf, static_cast<size_t>(n));
  }
}

void Reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

std::string Get(const std::string& target, const std::string& headers = "",
                const std::string& version = "HTTP/1.1") {
  return "GET " + target + " " + version +
         "\r\nHost: soak\r\nAccept: text/event-stream\r\n" + headers + "\r\n";
}

void Peak(Memory* peak) {
  Memory m = ReadMemory(false);
  peak->rss_kib = std::max(peak->rss_kib, m.rss_kib);
  peak->heap_kib = std::max(peak->heap_kib, m.heap_kib);
  peak->fds = std::max(peak->fds, m.fds);
}

// Refused: the request got a 4xx head or a close without one.
bool Refused(int port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return false;
  SendAll(fd, request);
  std::string in;
  bool closed = ReadToClose(fd, &in);
  close(fd);
  return closed && (in.empty() || in.rfind("HTTP/1.1 4", 0) == 0);
}

#define CHECK_OR_RETURN(cond, what) \
  if (!(cond)) return std::string(what) + " (round " + std::to_string(r) + ")"

std::string HostileRound(Server* s, int r, Memory* peak) {
  int port = s->port;
  std::string topics;
  for (int i = 0; i < 5000; ++i) topics += "&topic=t" + std::to_string(i);
  CHECK_OR_RETURN(Refused(port, Get("/events?topic=a",
                                    "X-Junk: " + std::string(64 << 10, 'j') +
                                        "\r\nConnection: close\r\n")),
                  "64 KiB header not refused");
  CHECK_OR_RETURN(
      Refused(port, Get("/events?topic=a&pad=" + std::string(64 << 10, 'x'))),
      "64 KiB request line not refused");
  CHECK_OR_RETURN(
      Refused(port, Get("/events?topic=a",
                        "Last-Event-ID: " + std::string(1 << 20, '1') +
                            "\r\nConnection: close\r\n")),
      "1 MiB Last-Event-ID not refused");
  CHECK_OR_RETURN(Refused(port, Get("/events?" + topics.substr(1),
                                    "Connection: close\r\n")),
                  "5000 topics not refused");
  CHECK_OR_RETURN(
      Refused(port, Get("/events?topic=a%00b", "Connection: close\r\n")),
      "NUL topic not refused");
  CHECK_OR_RETURN(Refused(port, Get("/events?topic=a&lastEventId=%FF.1",
                                    "Connection: close\r\n")),
                  "bad lastEventId not refused");
  Peak(peak);

  // RST at every stage.
  int fd = Connect(port);
  SendAll(fd, "GET /ev");
  Reset(fd);
  fd = Connect(port);
  SendAll(fd, "GET /events?topic=a HTTP/1.1\r\nHost: x\r\nAcc");
  Reset(fd);
  uint64_t total = s->stats().connections_total;
  fd = Connect(port);
  SendAll(fd, Get("/events?topic=a"));
  CHECK_OR_RETURN(
      WaitStats(
          s, [&](const HubStats& st) { return st.connections_total > total; }),
      "stream not started");
  Reset(fd);
  fd = Connect(port);
  std::string in;
  SendAll(fd, Get("/events?topic=first"));
  CHECK_OR_RETURN(ReadUntil(fd, &in, "retry: "), "no retry");
  CHECK_OR_RETURN(PublishN(s, "first", 1, 100), "publish");
  CHECK_OR_RETURN(ReadUntil(fd, &in, "data: "), "no first event");
  Reset(fd);

  // Pipelined behind a stream, then HTTP/1.0.
  fd = Connect(port);
  SendAll(fd, Get("/events?topic=a") + Get("/events?topic=b"));
  in.clear();
  CHECK_OR_RETURN(ReadUntil(fd, &in, "retry: "), "pipelined: no stream");
  close(fd);
  fd = Connect(port);
  SendAll(fd, Get("/events?topic=a", "", "HTTP/1.0"));
  in.clear();
  CHECK_OR_RETURN(ReadUntil(fd, &in, "retry: "), "HTTP/1.0: no stream");
  CHECK_OR_RETURN(in.find("chunked") == std::string::npos, "1.0 chunked");
  close(fd);

  // A client that never reads, closed at the watermark.
  uint64_t slow = s->stats().slow_consumer_closes;
  fd = Connect(port, 4096);
  SendAll(fd, Get("/events?topic=mute"));
  CHECK_OR_RETURN(WaitStats(s,
                            [&](const HubStats& st) {
                              return st.connections_total > total + 4;
                            }),
                  "mute stream not started");
  for (int i = 0; i < 5000 && s->stats().slow_consumer_closes == slow; ++i) {
    PublishN(s, "mute", 10, 4000);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Peak(peak);
  CHECK_OR_RETURN(s->stats().slow_consumer_closes == slow + 1,
                  "never-reading client not closed");
  close(fd);
  CHECK_OR_RETURN(
      WaitStats(s,
                [](const HubStats& st) { return st.connections_active == 0; }),
      "sessions left after the round");
  return "";
}

}  // namespace

std::string RunHostile(Server* s, const Config& c, Memory* peak) {
  for (int r = 0; r < c.rounds; ++r) {
    std::string err = HostileRound(s, r, peak);
    if (!err.empty()) return err;
  }
  return "";
}

std::string RunFlood(Server* s, const Config& c, Memory* peak) {
  int r = 0;
  std::vector<int> subs;
  for (int i = 0; i < c.limit; ++i) {
    int fd = Connect(s->port);
    CHECK_OR_RETURN(fd >= 0, "connect failed");
    SendAll(fd, Get("/events?topic=flood"));
    subs.push_back(fd);
  }
  CHECK_OR_RETURN(WaitStats(s,
                            [&](const HubStats& st) {
                              return st.connections_active ==
                                     static_cast<uint64_t>(c.limit);
                            }),
                  "subscribers not all connected");
  // The flood: every extra connection is shed, EventSource-style (200,
  // retry, close) or plain (503 + Retry-After), while events flow.
  std::vector<int> flood;
  int es = 0, plain = 0;
  size_t published = 0;
  for (int i = 0; i < c.extra; ++i) {
    int fd = Connect(s->port);
    CHECK_OR_RETURN(fd >= 0, "flood connect failed");
    SendAll(fd, i % 2 ? Get("/events?topic=flood")
                      : "GET /events?topic=flood HTTP/1.1\r\nHost: x\r\n\r\n");
    flood.push_back(fd);
    if (i % (c.extra / std::max(1, c.events) + 1) == 0) {
      CHECK_OR_RETURN(PublishN(s, "flood", 1, 200), "publish");
      ++published;
    }
  }
  Peak(peak);
  for (size_t i = 0; i < flood.size(); ++i) {
    std::string in;
    CHECK_OR_RETURN(ReadToClose(flood[i], &in), "shed connection not closed");
    close(flood[i]);
    if (i % 2) {
      CHECK_OR_RETURN(in.rfind("HTTP/1.1 200", 0) == 0 &&
                          in.find("retry: ") != std::string::npos &&
                          in.find("data:") == std::string::npos,
                      "EventSource flood not shed with 200 + retry");
      ++es;
    } else {
      CHECK_OR_RETURN(in.rfind("HTTP/1.1 503", 0) == 0 &&
                          in.find("Retry-After: ") != std::string::npos,
                      "plain flood not shed with 503 + Retry-After");
      ++plain;
    }
  }
  CHECK_OR_RETURN(PublishN(s, "flood", 1, 200), "publish");
  ++published;
  // Every subscriber got every event, in order: one data line each.
  for (int fd : subs) {
    std::string in;
    CHECK_OR_RETURN(ReadUntil(fd, &in, "data: ", published),
                    "a subscriber missed events");
    Reset(fd);
  }
  CHECK_OR_RETURN(s->stats().connections_shed == static_cast<uint64_t>(c.extra),
                  "shed count differs from the flood");
  CHECK_OR_RETURN(es + plain == c.extra, "flood count");
  CHECK_OR_RETURN(
      WaitStats(s,
                [](const HubStats& st) { return st.connections_active == 0; }),
      "sessions left after the flood");
  return "";
}

std::string RunChurn(Server* s, const Config& c, Memory* peak) {
  for (int r = 0; r < c.cycles; ++r) {
    int fd = Connect(s->port);
    CHECK_OR_RETURN(fd >= 0, "connect failed");
    std::string topic = "churn" + std::to_string(r % 16);
    std::string in;
    SendAll(fd, Get("/events?topic=" + topic));
    CHECK_OR_RETURN(ReadUntil(fd, &in, "retry: "), "no retry");
    if (r % 4 == 0) {  // publishing in between
      CHECK_OR_RETURN(PublishN(s, topic, 1, 100), "publish");
      CHECK_OR_RETURN(ReadUntil(fd, &in, "data: "), "event not delivered");
    }
    if (r % 2)
      Reset(fd);
    else
      close(fd);
    if (r % 1000 == 0) Peak(peak);
  }
  Peak(peak);
  int r = c.cycles;
  CHECK_OR_RETURN(
      WaitStats(s,
                [](const HubStats& st) { return st.connections_active == 0; }),
      "stuck sessions after the churn");
  return "";
}

}  // namespace evsse::soak
