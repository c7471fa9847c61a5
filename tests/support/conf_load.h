// The config tests' helpers, shared by conf_test (the library's directives)
// and alerts_conf_test (the alert server's own rows): the message of a load
// that must fail, the value of one that must succeed, and a file of the
// source tree (the test target defines EVSSE_SOURCE_DIR).
#ifndef EVSSE_TESTS_SUPPORT_CONF_LOAD_H_
#define EVSSE_TESTS_SUPPORT_CONF_LOAD_H_

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "evsse/status.h"

namespace evsse::testing {

// The error message of a load of `text` that must fail ("" and a test
// failure if it parsed).
template <typename T>
std::string LoadError(const Result<T>& r, const std::string& text) {
  EXPECT_FALSE(r.ok()) << "parsed: " << text;
  return r.ok() ? "" : r.status().message();
}

// The value of a load that must succeed (T{} and a test failure if not).
template <typename T>
T LoadValue(Result<T>&& r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r.value()) : T{};
}

#ifdef EVSSE_SOURCE_DIR
// The text of `relative` (a path from the source tree's root).
inline std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(EVSSE_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(in.good()) << relative;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
#endif

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_CONF_LOAD_H_
