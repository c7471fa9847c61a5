// Readings of /proc for the benchmarks: another process's CPU time and
// resident memory, and the kernel's slab and socket memory.
//
// Linux only; every function is safe from any thread and returns a value
// with ok == false when the file cannot be read (the process is gone).
#ifndef EVSSE_BENCH_PROC_STATS_H_
#define EVSSE_BENCH_PROC_STATS_H_

#include <sys/types.h>

#include <cstdint>

namespace evsse::bench {

// ProcSample: one process at one instant.
struct ProcSample {
  bool ok = false;
  double cpu_s = 0;       // utime + stime, in seconds (clock-tick resolution)
  int64_t rss_bytes = 0;  // VmRSS
  // /proc/<pid>/io (-1 when unreadable): write(2)/writev(2) calls and the
  // bytes they wrote (send/sendmsg are not counted; OpenSSL's socket BIO,
  // libevent's evbuffer_write and nginx's writev are).
  int64_t write_calls = -1;
  int64_t write_bytes = -1;
};

// SampleProcess reads /proc/<pid>/stat, /proc/<pid>/status and
// /proc/<pid>/io.
ProcSample SampleProcess(pid_t pid);

// SelfCpuSeconds returns this process's user + system CPU (getrusage).
double SelfCpuSeconds();

// MachineBusySeconds returns the CPU time all CPUs of the machine spent not
// idle (the first line of /proc/stat), in seconds, or -1.
double MachineBusySeconds();

// MeminfoKb returns a field of /proc/meminfo ("Slab", "SUnreclaim") in kB,
// or -1.
int64_t MeminfoKb(const char* field);

// SockstatTcpMemPages returns the "mem" figure of the TCP line of
// /proc/net/sockstat (pages of socket buffer memory), or -1.
int64_t SockstatTcpMemPages();

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_PROC_STATS_H_
