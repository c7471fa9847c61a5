// Command-line options of evsse-loadgen.
#ifndef EVSSE_BENCH_LOADGEN_OPTIONS_H_
#define EVSSE_BENCH_LOADGEN_OPTIONS_H_

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

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
  // Several nodes (the 100,000-subscriber benchmark, bench/scale/run.sh):
  // --ports P1,P2,...: subscriber i connects to node i % count (publishes
  // still go to --port, which defaults to the first of them).
  std::vector<int> ports;
  // --source-addrs A1,A2,...: subscriber i binds to address i % count
  // before connecting (127.0.0.x: each adds a whole ephemeral port range).
  std::vector<std::string> source_addrs;
  // --reconnect: a subscriber whose stream ends (its node died) reconnects
  // after the server's `retry:` (jittered by the server) to another node of
  // --ports picked at random, with Last-Event-ID, like an EventSource behind
  // a load balancer; loss and duplicates are still counted per subscriber.
  // Needs --subscribe-only.
  bool reconnect = false;
  // --subscribe-only: no publisher here; another process publishes
  // (--subscribers 0) the --events. Ends when every subscriber has every
  // event of its topic, or --settle-s after the last delivery.
  bool subscribe_only = false;
  // --ready-file F: written once every subscriber is connected.
  std::string ready_file;
  // --event-histograms: per event, its send time, first and last receive
  // time and log-bucketed latency histograms (subscribers that never lost
  // their stream apart), for merging the reports of several processes.
  bool event_histograms = false;
};

extern const char kUsage[];

// ParseArgs fills `o` from argv; false on an unknown or incomplete flag or
// an inconsistent combination.
bool ParseArgs(int argc, char** argv, Options* o);

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_LOADGEN_OPTIONS_H_
