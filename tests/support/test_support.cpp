#include "test_support.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace gemel::testing {

CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "gemel-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string sharedTestDir(const std::string& name, const std::string& gemel_binary,
                          const std::function<bool(const std::string& dir)>& make) {
  namespace fs = std::filesystem;
  const auto stamp = fs::last_write_time(gemel_binary).time_since_epoch().count();
  const auto root = fs::path(gemel_binary).parent_path().parent_path() / "test-cache";
  fs::create_directories(root);
  const auto dir = root / (name + "-" + std::to_string(stamp));
  const int lock = ::open((root / (name + ".lock")).c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0) throw std::runtime_error("cannot open the lock of " + dir.string());
  ::flock(lock, LOCK_EX);
  bool ok = fs::exists(dir / ".done");
  if (!ok) {
    // Older stamps of this name are from an earlier build.
    for (const auto& e : fs::directory_iterator(root)) {
      const auto n = e.path().filename().string();
      if (e.is_directory() && n.rfind(name + "-", 0) == 0) fs::remove_all(e.path());
    }
    fs::create_directories(dir);
    ok = make(dir.string());
    if (ok) {
      writeText((dir / ".done").string(), "");
    } else {
      fs::remove_all(dir);
    }
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return ok ? dir.string() : std::string();
}

void linkEntries(const std::string& shared, const std::string& dir) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(shared))
    fs::create_symlink(e.path(), fs::path(dir) / e.path().filename());
}

void writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace gemel::testing
