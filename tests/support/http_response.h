// ResponseReader: the client side of one HTTP/1.1 response, as the test
// clients read it (TestClient over TCP, TlsClient over TLS): the head (status
// line and headers), then the body, de-chunked when Transfer-Encoding is
// chunked. The client appends what it read and calls Consume; the body bytes
// that are complete go to the callback it passes.
#ifndef EVSSE_TESTS_SUPPORT_HTTP_RESPONSE_H_
#define EVSSE_TESTS_SUPPORT_HTTP_RESPONSE_H_

#include <strings.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evsse::testing {

class ResponseReader {
 public:
  void Append(const char* data, size_t n) { in_.append(data, n); }

  // Consume parses what has arrived: the head once it is complete, then
  // every complete body piece, passed to `body` in order.
  void Consume(const std::function<void(std::string_view)>& body) {
    if (!head_done_ && !ParseHead()) return;
    if (!chunked_) {
      if (!in_.empty()) body(in_);
      in_.clear();
      return;
    }
    for (;;) {
      size_t e = in_.find("\r\n");
      if (e == std::string::npos) return;
      size_t len = std::strtoul(in_.c_str(), nullptr, 16);
      if (in_.size() < e + 2 + len + 2) return;
      if (len == 0) {
        chunked_end_ = true;
        in_.erase(0, e + 4);
        return;
      }
      if (in_.compare(e + 2 + len, 2, "\r\n") != 0) bad_chunk_ = true;
      body(std::string_view(in_).substr(e + 2, len));
      in_.erase(0, e + 2 + len + 2);
    }
  }

  bool head_done() const { return head_done_; }
  int status() const { return status_; }
  // header: the first value of a response header ("" if absent); names are
  // matched case-insensitively.
  std::string header(const std::string& name) const {
    for (auto& [k, v] : headers_)
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    return "";
  }
  bool has_header(const std::string& name) const {
    for (auto& [k, v] : headers_)
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return true;
    return false;
  }
  bool chunked_end() const { return chunked_end_; }  // saw the last chunk
  // bad_chunk: a chunk was not followed by CRLF.
  bool bad_chunk() const { return bad_chunk_; }

 private:
  bool ParseHead() {
    size_t end = in_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = in_.substr(0, end);
    in_.erase(0, end + 4);
    head_done_ = true;
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    size_t sp = status_line.find(' ');
    status_ = std::atoi(status_line.c_str() + sp + 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        headers_.emplace_back(line.substr(0, colon), v);
      }
      pos = e + 2;
    }
    chunked_ = strcasecmp(header("Transfer-Encoding").c_str(), "chunked") == 0;
    return true;
  }

  std::string in_;
  bool head_done_ = false;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  bool chunked_ = false;
  bool chunked_end_ = false;
  bool bad_chunk_ = false;
};

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_HTTP_RESPONSE_H_
