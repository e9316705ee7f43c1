#pragma once
// File helpers shared by every writer: outputs are written to a temporary file in the target's
// directory and renamed over the target at the end, so a failure never leaves a half-written
// file at the target path and never destroys what was there before.
#include <string>
#include <vector>

namespace gemel {

// A unique temporary name beside `path` (same directory, so rename() is atomic).
std::string tempPathFor(const std::string& path);

// Renames `temp` over `path` (atomic on POSIX); throws OutputError on failure.
void commitTempFile(const std::string& temp, const std::string& path);

// Why writing beside `path` failed, for an error message: errno's text, and "the file system
// holding DIR is full (N bytes free)" or "... is read-only" where that is the cause.
std::string writeFailure(const std::string& path, int err);

// Makes `dir` (and its parents) and proves that a file can be written in it, before any long
// work whose result goes there; throws OutputError naming `dir`, the cause and `remedy`.
void requireWritableDirectory(const std::string& dir, const std::string& remedy);

// Writes a file through a temporary beside it: write() appends, commit() flushes it to disk and
// renames it over `path`. Destroyed without commit(), it removes the temporary and leaves `path`
// as it was. Every error is an OutputError naming `path`.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(const void* data, std::size_t size);
  void commit();

 private:
  std::string path_, temp_;
  int fd_ = -1;
  std::size_t written_ = 0;
};

// Writes `bytes` to `path` through a temporary file; throws OutputError naming `path`.
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
