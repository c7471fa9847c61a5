// The client side of HTTP/1.1 that the load generator needs: a response head
// parser and an incremental chunked-body decoder.
//
// Pure functions over bytes, no I/O, no allocation per byte; one decoder per
// connection, used from one thread.
#ifndef EVSSE_BENCH_HTTP_CODEC_H_
#define EVSSE_BENCH_HTTP_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace evsse::bench {

// ResponseHead: what the load generator reads from a response head.
struct ResponseHead {
  int status = 0;
  bool chunked = false;           // Transfer-Encoding: chunked
  int64_t content_length = -1;    // -1 when absent
  bool connection_close = false;  // Connection: close
};

// ParseResponseHead parses a status line and header lines (CRLF or LF line
// ends), up to but not including the blank line that ends the head. Returns
// false when the status line is not "HTTP/1.x NNN ...".
bool ParseResponseHead(std::string_view head, ResponseHead* out);

// FindHeadEnd returns the offset just past the "\r\n\r\n" (or "\n\n") that
// ends a response head in `buf`, searching from `from`, or npos.
size_t FindHeadEnd(std::string_view buf, size_t from);

// ChunkedDecoder removes the chunked transfer coding from a body fed in
// pieces of any size (a piece may end inside a size line, a CRLF or data).
// Chunk extensions and trailers are skipped. After the last (zero-size)
// chunk and its trailer, done() is true and further bytes are not consumed.
class ChunkedDecoder {
 public:
  // Feed decodes `in` and calls sink(std::string_view) for each run of body
  // bytes, in order. Returns the number of bytes of `in` consumed (less than
  // in.size() only when the body ended or on error); check ok().
  template <typename Sink>
  size_t Feed(std::string_view in, Sink&& sink);

  bool ok() const { return state_ != State::kError; }
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State {
    kSize,     // hex digits of a chunk size
    kExt,      // a chunk extension, skipped up to LF
    kSizeLf,   // LF after the size line's CR
    kData,     // `remaining_` bytes of chunk data
    kDataCr,   // CR after chunk data
    kDataLf,   // LF after chunk data
    kTrailer,  // trailer lines after the last chunk, up to a blank line
    kDone,
    kError,
  };

  // EndSizeLine moves past a complete size line.
  void EndSizeLine();

  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  int digits_ = 0;
  size_t trailer_line_ = 0;  // bytes in the current trailer line, CR excluded
};

template <typename Sink>
size_t ChunkedDecoder::Feed(std::string_view in, Sink&& sink) {
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::kSize: {
        int v = -1;
        if (c >= '0' && c <= '9') v = c - '0';
        if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        if (v >= 0) {
          if (++digits_ > 15) {
            state_ = State::kError;
            return i;
          }
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
        } else if (digits_ == 0) {
          state_ = State::kError;
          return i;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExt;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          EndSizeLine();
        } else {
          state_ = State::kError;
          return i;
        }
        ++i;
        break;
      }
      case State::kExt:
        if (c == '\n') EndSizeLine();
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') {
          state_ = State::kError;
          return i;
        }
        EndSizeLine();
        ++i;
        break;
      case State::kData: {
        size_t take = n - i;
        if (take > remaining_) take = static_cast<size_t>(remaining_);
        sink(in.substr(i, take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c == '\r') {
          state_ = State::kDataLf;
        } else if (c == '\n') {
          state_ = State::kSize;
        } else {
          state_ = State::kError;
          return i;
        }
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') {
          state_ = State::kError;
          return i;
        }
        state_ = State::kSize;
        ++i;
        break;
      case State::kTrailer:
        if (c == '\n') {
          if (trailer_line_ == 0) {
            state_ = State::kDone;
            return i + 1;
          }
          trailer_line_ = 0;
        } else if (c != '\r') {
          ++trailer_line_;
        }
        ++i;
        break;
      case State::kDone:
      case State::kError:
        return i;
    }
  }
  return i;
}

inline void ChunkedDecoder::EndSizeLine() {
  digits_ = 0;
  if (remaining_ == 0) {
    state_ = State::kTrailer;
    trailer_line_ = 0;
  } else {
    state_ = State::kData;
  }
}

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_HTTP_CODEC_H_
