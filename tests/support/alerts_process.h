// Test support for the alert server (examples/alerts): the real
// evsse-alerts binary as a child process with its own temp dir, config and
// log, and blocking HTTP helpers over loopback. Shared by alerts_test.cc
// (memory mode) and alerts_redis_test.cc (Redis mode). Every wait is
// bounded; a test kills only the children it started, by pid.
#ifndef EVSSE_TESTS_ALERTS_PROCESS_H_
#define EVSSE_TESTS_ALERTS_PROCESS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http_fixture.h"
#include "spawn_process.h"

namespace evsse::testing {

inline constexpr char kAlertsToken[] = "publish-token-0123456789";
// kAlertsBin: the binary under test; empty when the examples are not built
// (tests then skip).
#ifdef EVSSE_ALERTS_BIN
inline constexpr char kAlertsBin[] = EVSSE_ALERTS_BIN;
#else
inline constexpr char kAlertsBin[] = "";
#endif

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// WaitUntil polls `pred` every 5 ms until it holds or `timeout` passes.
inline bool WaitUntil(
    const std::function<bool()>& pred,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// AlertsServer: one evsse-alerts child process with its own temp directory
// (config and log). With `listen 127.0.0.1:0` the port is read back from the
// "listening" log line; `--listen` in `flags` fixes it (restarts).
class AlertsServer {
 public:
  explicit AlertsServer(const std::string& conf,
                        std::vector<std::string> env = {},
                        std::vector<std::string> flags = {}) {
    char tmpl[] = "/tmp/evsse-alerts-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    conf_path_ = dir_ + "/alerts.conf";
    log_path_ = dir_ + "/server.log";
    WriteFile(conf_path_, conf);
    std::vector<std::string> args = {kAlertsBin, "--config", conf_path_};
    args.insert(args.end(), flags.begin(), flags.end());
    std::string error;
    pid_ = Spawn(args, log_path_, &error, &env);
    EXPECT_GT(pid_, 0) << error;
  }

  ~AlertsServer() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
    }
    // A sanitizer build of the server reports into its log.
    std::string log = Log();
    for (const char* report : {"AddressSanitizer", "runtime error:"})
      EXPECT_EQ(log.find(report), std::string::npos) << log;
    for (const char* f : {"/alerts.conf", "/server.log"})
      std::remove((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  AlertsServer(const AlertsServer&) = delete;
  AlertsServer& operator=(const AlertsServer&) = delete;

  // Started waits for the "listening" line and reads the port from it.
  bool Started() {
    const std::string kLine = "msg=listening addr=127.0.0.1:";
    bool ok = WaitFor([&] {
      std::string log = Log();
      size_t at = log.find(kLine);
      if (at == std::string::npos) return false;
      port_ = std::atoi(log.c_str() + at + kLine.size());
      return port_ > 0;
    });
    EXPECT_TRUE(ok) << "server did not start; log:\n" << Log();
    return ok;
  }

  bool WaitFor(
      const std::function<bool()>& pred,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    return WaitUntil(pred, timeout);
  }

  bool WaitLog(const std::string& needle, size_t count = 1) {
    return WaitFor([&] {
      std::string log = Log();
      size_t n = 0;
      for (size_t at = log.find(needle); at != std::string::npos;
           at = log.find(needle, at + 1))
        ++n;
      return n >= count;
    });
  }

  // ExitStatus waits for the process to end; -1 on timeout or a signal.
  int ExitStatus(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    int status = 0;
    bool done = WaitFor(
        [&] {
          if (exited_) return true;
          if (waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
          }
          return exited_;
        },
        timeout);
    return done ? exit_status_ : -1;
  }

  void Signal(int sig) { kill(pid_, sig); }
  std::string Log() const { return ReadFile(log_path_); }
  void Rewrite(const std::string& conf) { WriteFile(conf_path_, conf); }
  int port() const { return port_; }
  const std::string& conf_path() const { return conf_path_; }

 private:
  std::string dir_, conf_path_, log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int exit_status_ = -1;
};

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  nlohmann::json json() const {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << body;
    return j;
  }
  std::string error() const {
    nlohmann::json j = json();
    return j.is_object() && j.contains("error") ? j["error"].get<std::string>()
                                                : "";
  }
};

// PollClients reads every client until pred() holds or the timeout passes.
inline bool PollClients(
    const std::vector<TestClient*>& clients, const std::function<bool()>& pred,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (TestClient* c : clients) c->Poll();
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// CallServer sends one request (Connection: close) and waits for the whole
// answer.
inline Response CallServer(int port, const std::string& method,
                           const std::string& target,
                           const std::string& headers = "",
                           const std::string& body = "") {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\n" +
                    "Connection: close\r\n" + headers;
  if (!body.empty() || method == "POST")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  TestClient c(port, req);
  bool done = PollClients({&c}, [&] { return c.has_head() && c.closed(); });
  EXPECT_TRUE(done) << method << " " << target << ": no complete answer";
  Response r;
  r.status = c.status();
  r.body = c.body();
  for (const char* h :
       {"Content-Type", "WWW-Authenticate", "Allow", "Content-Security-Policy",
        "Cache-Control", "Access-Control-Allow-Origin",
        "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"})
    r.headers[h] = c.header(h);
  return r;
}

inline Response PostAlertTo(int port, const std::string& json,
                            const std::string& token = kAlertsToken,
                            const std::string& type = "application/json") {
  std::string h;
  if (!token.empty()) h += "Authorization: Bearer " + token + "\r\n";
  if (!type.empty()) h += "Content-Type: " + type + "\r\n";
  return CallServer(port, "POST", "/alerts", h, json);
}

// AlertJson: an alert body; `more` is appended inside the object.
inline std::string AlertJson(const std::string& severity,
                             const std::string& team,
                             const std::string& title = "disk full",
                             const std::string& more = "") {
  return R"({"severity":")" + severity + R"(","title":")" + title +
         R"(","body":"/var at 99%","team":")" + team + "\"" + more + "}";
}

// OpenStream starts GET /alerts/stream?<query> (it is read by PollClients).
inline std::unique_ptr<TestClient> OpenStream(int port,
                                              const std::string& query,
                                              const std::string& headers = "") {
  return std::make_unique<TestClient>(
      port, "GET /alerts/stream?" + query +
                " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" +
                headers + "\r\n");
}

// ParseMetrics maps each Prometheus sample (name with labels) to its value.
inline std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_ALERTS_PROCESS_H_
