#pragma once
// A tiny "{}" formatter for log lines and error messages. It exists so that public headers need
// neither fmt nor spdlog (PyTorch 2.x ships a fmt that clashes with the system one); each "{}"
// is replaced by the next argument written with operator<<.
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gemel {
namespace detail {

inline void formatInto(std::ostringstream& out, std::string_view fmt) { out << fmt; }

template <typename T, typename... Rest>
void formatInto(std::ostringstream& out, std::string_view fmt, const T& first,
                const Rest&... rest) {
  const auto pos = fmt.find("{}");
  if (pos == std::string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, pos) << first;
  formatInto(out, fmt.substr(pos + 2), rest...);
}

}  // namespace detail

template <typename... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  detail::formatInto(out, fmt, args...);
  return out.str();
}

// 1536 -> "1.5 KiB", 120000000 -> "114.4 MiB": binary units, one decimal above bytes.
std::string formatBytes(int64_t bytes);

// 0.61234, 3 -> "0.612": fixed notation with `digits` decimals.
std::string formatFixed(double value, int digits);

// The candidate nearest to a mistyped `word` (fewest single-character edits, a swap of two
// neighbours counting as one), when it is near enough to be what was meant: at most one edit in
// words of up to 4 characters, two up to 8, else three. "" when none is.
std::string closestMatch(std::string_view word, const std::vector<std::string>& candidates);
// " (did you mean 'X'?)" for closestMatch's X, or "".
std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates);

// "42" -> 42, "-3" -> -3; anything else (empty, "4x", " 4", out of int's range) -> nullopt.
std::optional<int> parseInt(std::string_view text);

}  // namespace gemel
