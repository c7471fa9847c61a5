#include "http_codec.h"

#include <strings.h>

#include <cstdlib>
#include <string>

namespace evsse::bench {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool NameIs(std::string_view name, const char* want) {
  return name.size() == std::char_traits<char>::length(want) &&
         strncasecmp(name.data(), want, name.size()) == 0;
}

// ContainsToken: a case-insensitive search for `token` in a header value
// ("chunked", "close"); good enough for the servers we measure.
bool ContainsToken(std::string_view value, std::string_view token) {
  for (size_t i = 0; i + token.size() <= value.size(); ++i)
    if (strncasecmp(value.data() + i, token.data(), token.size()) == 0)
      return true;
  return false;
}

}  // namespace

size_t FindHeadEnd(std::string_view buf, size_t from) {
  for (size_t i = from; i < buf.size(); ++i) {
    if (buf[i] != '\n') continue;
    if (i >= 1 && buf[i - 1] == '\n') return i + 1;
    if (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n') return i + 1;
  }
  return std::string_view::npos;
}

bool ParseResponseHead(std::string_view head, ResponseHead* out) {
  *out = ResponseHead();
  size_t eol = head.find('\n');
  std::string_view line = Trim(head.substr(0, eol));
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ')
    return false;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    status = status * 10 + (line[i] - '0');
  }
  out->status = status;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 1);
    eol = head.find('\n');
    line = Trim(head.substr(0, eol));
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (NameIs(name, "transfer-encoding")) {
      out->chunked = ContainsToken(value, "chunked");
    } else if (NameIs(name, "content-length")) {
      out->content_length =
          std::strtoll(std::string(value).c_str(), nullptr, 10);
    } else if (NameIs(name, "connection")) {
      out->connection_close = ContainsToken(value, "close");
    }
  }
  return true;
}

}  // namespace evsse::bench
