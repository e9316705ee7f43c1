#include "gemel/dist/watchdog.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/dist/world.h"

namespace gemel::dist {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kBeatSeconds = 1.0;
// A heartbeat older than this means the rank's process is not running (stopped or lost).
constexpr double kStaleSeconds = 5.0;

double wallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Watchdog {
 public:
  ~Watchdog() { stop(); }

  void start(double timeout, const std::string& dir, int rank, int size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (thread_.joinable() || timeout <= 0) return;
    rank_ = rank;
    size_ = size;
    timeout_ = timeout;
    dir_ = dir;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec)
      log::warn("dist",
                "heartbeat directory {}: {}; a stalled collective is still ended after "
                "{} s, without naming the stalled rank",
                dir_, ec.message(), timeout_);
    beat();
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!thread_.joinable()) return;
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    std::error_code ec;
    fs::remove(beatPath(rank_), ec);
  }

  bool arm(const char* what, const std::vector<int>* ranks, bool patient) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!thread_.joinable() || armed_) return false;
    armed_ = true;
    patient_ = patient;
    what_ = what;
    ranks_.clear();
    if (ranks) {
      ranks_ = *ranks;
    } else {
      for (int r = 0; r < size_; ++r) ranks_.push_back(r);
    }
    since_ = Clock::now();
    return true;
  }

  void disarm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;
  }

 private:
  std::string beatPath(int rank) const { return dir_ + "/rank-" + std::to_string(rank); }

  // Written to a temporary name and renamed, so that a reader never sees half a line.
  void beat() const {
    const auto path = beatPath(rank_);
    const auto temp = path + ".tmp";
    {
      std::ofstream out(temp, std::ios::trunc);
      if (!out) return;
      out << format("{} {}\n", formatFixed(wallSeconds(), 3), static_cast<long>(getpid()));
    }
    std::error_code ec;
    fs::rename(temp, path, ec);
  }

  // Seconds since rank r's last heartbeat; negative when it has none.
  double beatAge(int r) const {
    std::ifstream in(beatPath(r));
    double t = 0;
    if (!(in >> t)) return -1;
    return wallSeconds() - t;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    auto next_beat = Clock::now();
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_) break;
      const auto now = Clock::now();
      if (now >= next_beat) {
        beat();
        next_beat = now + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(kBeatSeconds));
      }
      if (armed_ && std::chrono::duration<double>(now - since_).count() > timeout_ &&
          (!patient_ || anyStale()))
        fire(now);
    }
  }

  // Whether a rank the armed call waits on has stopped beating (or never beat).
  bool anyStale() const {
    for (const int r : ranks_) {
      if (r == rank_) continue;
      const double age = beatAge(r);
      if (age < 0 || age > kStaleSeconds) return true;
    }
    return false;
  }

  [[noreturn]] void fire(Clock::time_point now) const {
    const double waited = std::chrono::duration<double>(now - since_).count();
    std::string stale, missing, set;
    for (int r : ranks_) {
      set += (set.empty() ? "" : ",") + std::to_string(r);
      if (r == rank_) continue;
      const double age = beatAge(r);
      if (age < 0) {
        missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      } else if (age > kStaleSeconds) {
        stale += format("{}rank {} (its last heartbeat is {} s old)", stale.empty() ? "" : ", ", r,
                        formatFixed(age, 0));
      }
    }
    std::string why;
    if (!stale.empty()) {
      why = format("{} stopped responding: its process is stopped, frozen or cut off", stale);
    } else if (!missing.empty()) {
      why = format(
          "rank(s) {} left no heartbeat in {} (is it on a filesystem every node "
          "sees?), so the stalled rank is not known",
          missing, dir_);
    } else {
      why =
          "every rank it waits on is alive: one is stuck elsewhere, or the ranks disagree on "
          "the order of their collectives (a bug: please report)";
    }
    const auto message = format(
        "{} on ranks {} has waited {} s, beyond --timeout {} s: {}; ending the job (raise "
        "--timeout if a step legitimately takes longer)",
        what_, set, formatFixed(waited, 0), formatFixed(timeout_, 0), why);
    std::fprintf(stderr, "gemel [rank %d/%d]: error: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    std::_Exit(static_cast<int>(ExitCode::kComm));
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  bool stopping_ = false;
  int rank_ = 0, size_ = 1;
  double timeout_ = 0;
  std::string dir_;
  bool armed_ = false;
  bool patient_ = false;  // fires only on a stale rank, however long the wait
  const char* what_ = "";
  std::vector<int> ranks_;
  Clock::time_point since_;
};

Watchdog& watchdog() {
  static Watchdog w;
  return w;
}

}  // namespace

void startWatchdog(double timeout_seconds, const std::string& heartbeat_dir, const World& world) {
  if (world.size() < 2) return;
  watchdog().start(timeout_seconds, heartbeat_dir, world.rank(), world.size());
}

// Armed only while the watchdog runs (a distributed job that asked for it).
CollectiveScope::CollectiveScope(const char* what, const std::vector<int>* ranks, bool patient)
    : armed_(watchdog().arm(what, ranks, patient)) {}

CollectiveScope::~CollectiveScope() {
  if (armed_) watchdog().disarm();
}

}  // namespace gemel::dist
