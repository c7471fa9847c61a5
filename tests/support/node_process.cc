#include "node_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "spawn_process.h"

namespace evsse::testing {

using Clock = std::chrono::steady_clock;

std::string PostRequest(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string IdOf(const std::string& body) {
  static const std::string kKey = "{\"id\":\"";
  size_t at = body.find(kKey);
  if (at == std::string::npos) return "";
  size_t end = body.find('"', at + kKey.size());
  return end == std::string::npos
             ? ""
             : body.substr(at + kKey.size(), end - at - kKey.size());
}

PostReply BlockingPost(int port, const std::string& target,
                       const std::string& body, int timeout_ms) {
  PostReply out;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return out;
  }
  std::string req = PostRequest(target, body);
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  out.sent = off == req.size();
  std::string in;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  size_t sp = in.find(' ');
  size_t head_end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || sp == std::string::npos ||
      head_end == std::string::npos)
    return out;
  out.status = std::atoi(in.c_str() + sp + 1);
  out.body = in.substr(head_end + 4);
  return out;
}

::testing::AssertionResult NodeProcess::Start(int port,
                                              const std::string& redis) {
  return StartWith(port, {"--redis", redis});
}

::testing::AssertionResult NodeProcess::StartWith(
    int port, const std::vector<std::string>& redis_args) {
  port_ = port;
  std::vector<std::string> args{binary_, "--port", std::to_string(port)};
  args.insert(args.end(), redis_args.begin(), redis_args.end());
  std::string error;
  pid_ = Spawn(args, log_, &error);
  if (pid_ < 0) return ::testing::AssertionFailure() << error;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "exited:\n" << Log();
    }
    if (BlockingPost(port, "/publish?topic=up", "up").status == 200)
      return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ::testing::AssertionFailure() << "not up after 15 s:\n" << Log();
}

void NodeProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int NodeProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status;
}

std::string NodeProcess::Log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
}

}  // namespace evsse::testing
