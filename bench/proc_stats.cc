#include "proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace evsse::bench {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// FieldKb finds "<name>:   <n> kB" in a /proc file's text.
int64_t FieldKb(const std::string& text, const char* name) {
  std::string key = std::string("\n") + name + ":";
  size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + key.size() - 1, nullptr, 10);
}

}  // namespace

ProcSample SampleProcess(pid_t pid) {
  ProcSample s;
  std::string stat, status;
  std::string dir = "/proc/" + std::to_string(pid);
  if (!ReadFile(dir + "/stat", &stat) || !ReadFile(dir + "/status", &status))
    return s;
  // The command name may hold spaces and parentheses: fields are counted
  // from the last ')'. After it come field 3 (state) ... 14 utime, 15 stime.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return s;
  std::istringstream rest(stat.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  static const long kTicks = sysconf(_SC_CLK_TCK);
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(kTicks);
  int64_t rss_kb = FieldKb(status, "VmRSS");
  if (rss_kb < 0) return s;
  s.rss_bytes = rss_kb * 1024;
  std::string io;
  if (ReadFile(dir + "/io", &io)) {
    s.write_calls = FieldKb(io, "syscw");
    s.write_bytes = FieldKb(io, "wchar");
  }
  s.ok = true;
  return s;
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double MachineBusySeconds() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  if (!(f >> cpu) || cpu != "cpu") return -1;
  unsigned long long v, total = 0, idle = 0;
  for (int i = 0; i < 8 && f >> v; ++i) {
    total += v;  // user nice system idle iowait irq softirq steal
    if (i == 3 || i == 4) idle += v;
  }
  static const long kTicks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(total - idle) / static_cast<double>(kTicks);
}

int64_t MeminfoKb(const char* field) {
  std::string text;
  if (!ReadFile("/proc/meminfo", &text)) return -1;
  return FieldKb(text, field);
}

int64_t SockstatTcpMemPages() {
  std::string text;
  if (!ReadFile("/proc/net/sockstat", &text)) return -1;
  size_t tcp = text.find("\nTCP:");
  if (tcp == std::string::npos) return -1;
  size_t eol = text.find('\n', tcp + 1);
  std::string line = text.substr(tcp, eol - tcp);
  size_t mem = line.find(" mem ");
  if (mem == std::string::npos) return -1;
  return std::strtoll(line.c_str() + mem + 5, nullptr, 10);
}

}  // namespace evsse::bench
