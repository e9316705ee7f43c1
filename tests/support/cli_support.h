#pragma once
// Running the gemel executable as a user does, and reading numbers from its --json output.
// Header-only: GEMEL_BINARY is defined per test binary (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "test_support.h"

namespace gemel::testing {

inline CommandResult gemel(const std::string& args) {
  return run(shellQuote(GEMEL_BINARY) + " " + args);
}

// The number after "key": in `json`, searching from the first occurrence of `after`.
inline double jsonNumber(const std::string& json, const std::string& after,
                         const std::string& key) {
  const auto at = json.find(after);
  EXPECT_NE(at, std::string::npos) << after << " in " << json;
  if (at == std::string::npos) return 0;
  std::smatch m;
  const std::string rest = json.substr(at);
  const bool found = std::regex_search(rest, m, std::regex("\"" + key + "\":\\s*([0-9.eE+-]+)"));
  EXPECT_TRUE(found) << key << " after " << after << " in " << json;
  return found ? std::stod(m[1]) : 0;
}

}  // namespace gemel::testing
