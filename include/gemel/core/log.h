#pragma once
// Logging facade over spdlog. This header includes neither spdlog nor fmt on purpose: PyTorch
// 2.x puts its own fmt on the include path, which clashes with the system spdlog's fmt, so
// spdlog lives only in log.cpp (target gemel_log, compiled without torch's include paths).
//
// Every line is tagged with the process's rank ("r0" when MPI is absent) and a [module]
// prefix. Progress lines are printed by rank 0 only, and so are info lines unless
// setAllRanks(true) (`--log-all-ranks`): every rank runs the same search, so other ranks would
// repeat rank 0's lines. Warnings and errors, and debug/trace when asked for, come from all ranks.
#include <string>
#include <string_view>

#include "gemel/core/format.h"

namespace gemel::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Set once the process knows its place in the job (before that: rank 0 of 1).
void setRank(int rank, int world_size);
int rank();
int worldSize();

void setLevel(Level level);
void setAllRanks(bool all);
// Parses "trace|debug|info|warn|error|off"; throws UsageError on anything else.
Level parseLevel(const std::string& name);

// Log lines go to stderr, so that stdout carries only a command's results (tables, JSON).
void write(Level level, std::string_view module, const std::string& message);
// Rank 0 only; a carriage-return progress line when stderr is a terminal, else plain lines.
void progress(std::string_view module, const std::string& message, bool done);

template <typename... Args>
void trace(std::string_view module, std::string_view fmt, const Args&... args) {
  write(Level::kTrace, module, format(fmt, args...));
}
template <typename... Args>
void debug(std::string_view module, std::string_view fmt, const Args&... args) {
  write(Level::kDebug, module, format(fmt, args...));
}
template <typename... Args>
void info(std::string_view module, std::string_view fmt, const Args&... args) {
  write(Level::kInfo, module, format(fmt, args...));
}
template <typename... Args>
void warn(std::string_view module, std::string_view fmt, const Args&... args) {
  write(Level::kWarn, module, format(fmt, args...));
}
template <typename... Args>
void error(std::string_view module, std::string_view fmt, const Args&... args) {
  write(Level::kError, module, format(fmt, args...));
}

}  // namespace gemel::log
