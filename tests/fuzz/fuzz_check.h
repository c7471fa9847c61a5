// Helpers shared by the fuzz targets. A property that does not hold aborts,
// which libFuzzer reports as a crash and saves the input: a fuzz target
// checks properties, not only the absence of crashes.
#ifndef EVSSE_TESTS_FUZZ_FUZZ_CHECK_H_
#define EVSSE_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// EVSSE_FUZZ_CHECK aborts with the failed condition when `cond` is false.
#define EVSSE_FUZZ_CHECK(cond)                                                 \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                     \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

namespace evsse::fuzz {

// SplitOn cuts `in` at every `sep` byte. The targets use 0xFF, a byte that
// never occurs in UTF-8, so that seed files stay readable text.
inline std::vector<std::string_view> SplitOn(std::string_view in, char sep) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  for (;;) {
    size_t at = in.find(sep, begin);
    if (at == std::string_view::npos) {
      parts.push_back(in.substr(begin));
      return parts;
    }
    parts.push_back(in.substr(begin, at - begin));
    begin = at + 1;
  }
}

// IsPrintableAscii: every byte in 0x20..0x7E (what may reach a log line or
// an error body unescaped).
inline bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Hash is FNV-1a: split points derived from the input, so that a crash
// reproduces from the saved input alone.
inline uint64_t Hash(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace evsse::fuzz

#endif  // EVSSE_TESTS_FUZZ_FUZZ_CHECK_H_
