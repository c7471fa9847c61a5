// The config tests' helpers, shared by conf_test (the library's directives)
// and alerts_conf_test (the alert server's own rows): the message of a load
// that must fail, the value of one that must succeed, the default cells of
// a README's directive table, and a file of the source tree (the test
// target defines EVSSE_SOURCE_DIR).
#ifndef EVSSE_TESTS_SUPPORT_CONF_LOAD_H_
#define EVSSE_TESTS_SUPPORT_CONF_LOAD_H_

#include <gtest/gtest.h>

#include <fstream>
#include <map>
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

// DefaultCells maps each row "| `name` | default | meaning |" of the
// directive tables of a README (conf/README.md, examples/alerts/README.md)
// to its default cell ("" for a row "| `name` | | meaning |").
inline std::map<std::string, std::string> DefaultCells(
    const std::string& text) {
  std::map<std::string, std::string> rows;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    size_t name_end = line.find("` | ", 3);
    if (name_end == std::string::npos) continue;
    size_t cell = name_end + 4;
    std::string value;  // stays empty for "| `name` | | ..."
    if (cell < line.size() && line[cell] != '|') {
      size_t cell_end = line.find(" |", cell);
      if (cell_end == std::string::npos) continue;
      value = line.substr(cell, cell_end - cell);
    }
    rows.emplace(line.substr(3, name_end - 3), value);
  }
  return rows;
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
