#pragma once
// File helpers shared by every writer: outputs are written to a temporary file in the target's
// directory and renamed over the target at the end, so a failure never leaves a half-written
// file at the target path and never destroys what was there before.
#include <string>
#include <vector>

namespace gemel {

// A unique temporary name beside `path` (same directory, so rename() is atomic).
std::string tempPathFor(const std::string& path);

// Renames `temp` over `path` (atomic on POSIX); throws InputError on failure.
void commitTempFile(const std::string& temp, const std::string& path);

// Writes `bytes` to `path` through a temporary file; throws InputError naming `path`.
void writeFileAtomic(const std::string& path, const char* data, std::size_t size);

// Reads a whole file; throws InputError naming `path` and `what` (e.g. "weights file").
std::vector<char> readFile(const std::string& path, const std::string& what);

// Removes a temporary file when it goes out of scope unless release() was called.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void release() { path_.clear(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace gemel
