#include "gemel/core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gemel/core/error.h"

namespace gemel::log {
namespace {

std::atomic<int> g_rank{0};
std::atomic<int> g_world{1};
std::atomic<bool> g_all_ranks{false};
std::mutex g_mutex;  // guards logger creation and progress output

spdlog::level::level_enum toSpd(Level level) {
  switch (level) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("gemel");
    l->set_pattern("[%H:%M:%S.%e] [r0] [%^%l%$] %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return instance;
}

}  // namespace

void setRank(int rank, int world_size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_rank = rank;
  g_world = world_size;
  logger()->set_pattern("[%H:%M:%S.%e] [r" + std::to_string(rank) + "] [%^%l%$] %v");
}

int rank() { return g_rank; }
int worldSize() { return g_world; }

void setLevel(Level level) { logger()->set_level(toSpd(level)); }

void setAllRanks(bool all) { g_all_ranks = all; }

Level parseLevel(const std::string& name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw UsageError("--log-level '" + name +
                   "' is not a level; use trace, debug, info, warn, error or off");
}

void write(Level level, std::string_view module, const std::string& message) {
  auto& l = logger();
  const auto spd = toSpd(level);
  if (!l->should_log(spd)) return;
  if (level == Level::kInfo && g_rank != 0 && !g_all_ranks) return;
  l->log(spd, "[{}] {}", module, message);
}

void progress(std::string_view module, const std::string& message, bool done) {
  if (g_rank != 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  static const bool tty = isatty(STDERR_FILENO) != 0;
  if (tty) {
    std::fprintf(stderr, "\r\033[K[%.*s] %s%s", static_cast<int>(module.size()), module.data(),
                 message.c_str(), done ? "\n" : "");
    std::fflush(stderr);
  } else {
    logger()->info("[{}] {}", module, message);
  }
}

}  // namespace gemel::log
