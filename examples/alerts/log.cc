// Structured logs: one line per event, key=value, on stderr. Values that
// need it are double-quoted with \" and \\ escaped and control bytes as
// \xNN, so a line is always one line and machine-readable.
#include <sys/time.h>

#include <cstdio>
#include <ctime>

#include "app.h"

namespace alerts {
namespace {

evsse::LogLevel g_level = evsse::LogLevel::kInfo;

const char* LevelName(evsse::LogLevel level) {
  switch (level) {
    case evsse::LogLevel::kDebug:
      return "debug";
    case evsse::LogLevel::kInfo:
      return "info";
    case evsse::LogLevel::kWarning:
      return "warning";
    case evsse::LogLevel::kError:
      return "error";
  }
  return "info";
}

void AppendValue(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == '"' || u == '=' || u == '\\' || u >= 0x7f)
      plain = false;
  }
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

void SetLogLevel(evsse::LogLevel level) { g_level = level; }

int64_t NowUnixMs() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t{tv.tv_sec} * 1000 + tv.tv_usec / 1000;
}

std::string NowIso() {
  int64_t ms = NowUnixMs();
  time_t secs = static_cast<time_t>(ms / 1000);
  tm t;
  gmtime_r(&secs, &t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                t.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

void Log(evsse::LogLevel level, std::string_view msg,
         std::initializer_list<Field> fields) {
  if (level < g_level) return;
  std::string line = "ts=" + NowIso() + " level=" + LevelName(level) + " msg=";
  AppendValue(line, msg);
  for (const Field& f : fields) {
    line += ' ';
    line += f.first;
    line += '=';
    AppendValue(line, f.second);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace alerts
