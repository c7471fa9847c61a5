// Command-line options of evsse-loadgen.
#ifndef EVSSE_BENCH_LOADGEN_OPTIONS_H_
#define EVSSE_BENCH_LOADGEN_OPTIONS_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace evsse::bench {

// Options: see kUsage and bench/README.md for what each one does.
struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  size_t subscribers = 100;
  size_t topics = 1;
  size_t events = 100;
  double rate = 0;   // events/s; 0 = as fast as acknowledged
  size_t size = 64;  // bytes of event data, padded
  pid_t server_pid = 0;
  std::string name = "scenario";
  double timeout_s = 60;
  bool idle_only = false;
  bool resume = false;
  size_t publishers = 1;        // publish connections
  size_t pipeline = 4;          // requests in flight per publish connection
  size_t connect_window = 100;  // handshakes in flight (the listen backlog)
  double settle_s = 3;          // quiet time that ends a run with losses
  double idle_wait_s = 2;       // --idle-only: wait before reading the RSS
  std::string token;
  // The server's protocol dialect: "evsse" or "nchan" (nginx + nchan: 201 or
  // 202 acks, "time:tag" ids, an EventSource body without chunked coding).
  // Both serve GET /events?topic=T and POST /publish?topic=T.
  std::string target = "evsse";
  pid_t redis_pid = 0;  // also report this redis-server's CPU per publish
  double warmup_s = 0;  // wait between "all connected" and publishing
  // --defer-reads: subscribers stop reading while events are published and
  // read (and check) everything afterwards; the window ends when the
  // server's last byte reached the subscribers' receive queues. Measures
  // the server's delivery rate without the generator's reads competing for
  // the same cores (latency is then not measured). See bench/README.md.
  bool defer_reads = false;
  // --tls: subscribers and publishers speak TLS, verifying the server's
  // chain against --cacert (default: the system store) and its name
  // against --tls-name (default: --host; an IP literal is checked against
  // the certificate's IP addresses).
  bool tls = false;
  std::string cacert;
  std::string tls_name;
};

extern const char kUsage[];

// ParseArgs fills `o` from argv; false on an unknown or incomplete flag or
// an inconsistent combination.
bool ParseArgs(int argc, char** argv, Options* o);

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_LOADGEN_OPTIONS_H_
