// A self-check of the load generator's HTTP codec (no test framework: the
// bench builds without the test suite). Exit status 0 when every case passes.
#include <cstdio>
#include <string>
#include <string_view>

#include "http_codec.h"

namespace evsse::bench {
namespace {

int failures = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", what);
  }
}

// Decode feeds `wire` split at every position in `cuts` (ascending) and
// returns the body; `consumed` gets the bytes consumed in total.
std::string Decode(std::string_view wire, size_t cut_every, size_t* consumed,
                   bool* ok, bool* done) {
  ChunkedDecoder d;
  std::string body;
  *consumed = 0;
  for (size_t at = 0; at < wire.size(); at += cut_every) {
    std::string_view piece = wire.substr(at, cut_every);
    size_t used = d.Feed(piece, [&](std::string_view p) { body.append(p); });
    *consumed += used;
    if (used < piece.size()) break;
  }
  *ok = d.ok();
  *done = d.done();
  return body;
}

void ChunkedCases() {
  const std::string wire =
      "5\r\nhello\r\n"
      "1;name=value\r\n \r\n"
      "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
      "0\r\nX-Trailer: 1\r\n\r\n"
      "NEXT";
  const std::string want = "hello abcdefghijklmnopqrstuvwxyz";
  for (size_t every = 1; every <= wire.size(); ++every) {
    size_t consumed;
    bool ok, done;
    std::string body = Decode(wire, every, &consumed, &ok, &done);
    Check(ok && done, "chunked: decodes to the end");
    Check(body == want, "chunked: body");
    Check(consumed == wire.size() - 4, "chunked: stops after the trailer");
  }
  // Two-piece splits at every position.
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    ChunkedDecoder d;
    std::string body;
    auto sink = [&](std::string_view p) { body.append(p); };
    d.Feed(std::string_view(wire).substr(0, cut), sink);
    if (!d.done()) d.Feed(std::string_view(wire).substr(cut), sink);
    Check(d.done() && body == want, "chunked: two pieces");
  }
  {
    size_t consumed;
    bool ok, done;
    Decode("zz\r\n", 1, &consumed, &ok, &done);
    Check(!ok, "chunked: bad size is an error");
    Decode("3\r\nabcX", 2, &consumed, &ok, &done);
    Check(!ok, "chunked: missing CRLF after data is an error");
    std::string body = Decode("3\r\nabc\r\n", 100, &consumed, &ok, &done);
    Check(ok && !done && body == "abc", "chunked: an open body is not done");
  }
}

void HeadCases() {
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "transfer-encoding: Chunked\r\nConnection: close\r\n\r\nbody";
  size_t end = FindHeadEnd(head, 0);
  Check(end == head.size() - 4, "head: end found");
  ResponseHead h;
  Check(ParseResponseHead(std::string_view(head).substr(0, end), &h),
        "head: parses");
  Check(h.status == 200 && h.chunked && h.connection_close &&
            h.content_length == -1,
        "head: fields");
  Check(ParseResponseHead("HTTP/1.1 503 Busy\r\nContent-Length: 12\r\n", &h) &&
            h.status == 503 && h.content_length == 12 && !h.chunked,
        "head: content length");
  Check(!ParseResponseHead("HTTP/2 200\r\n", &h), "head: not HTTP/1.x");
  Check(FindHeadEnd("HTTP/1.1 200 OK\r\nA: b\r\n", 0) == std::string::npos,
        "head: incomplete");
}

}  // namespace
}  // namespace evsse::bench

int main() {
  evsse::bench::ChunkedCases();
  evsse::bench::HeadCases();
  if (evsse::bench::failures) return 1;
  std::printf("http codec: all checks passed\n");
  return 0;
}
