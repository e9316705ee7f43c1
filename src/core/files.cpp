#include "gemel/core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gemel/core/error.h"

namespace fs = std::filesystem;

namespace gemel {

std::string tempPathFor(const std::string& path) {
  static std::atomic<int> counter{0};
  const fs::path p(path);
  const auto name = "." + p.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(counter++);
  return (p.parent_path() / name).string();
}

void commitTempFile(const std::string& temp, const std::string& path) {
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp.c_str());
    throw InputError(
        format("{}: cannot be written ({}); check that its directory is writable", path, why));
  }
}

void writeFileAtomic(const std::string& path, const char* data, std::size_t size) {
  const auto parent = fs::path(path).parent_path();
  GEMEL_THROW_IF_NOT(parent.empty() || fs::is_directory(parent), InputError,
                     "{}: cannot be written: directory '{}' does not exist; create it first", path,
                     parent.string());
  const auto temp = tempPathFor(path);
  TempFileGuard guard(temp);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  GEMEL_THROW_IF_NOT(fd >= 0, InputError,
                     "{}: cannot be written ({}); check that its directory is writable", path,
                     std::strerror(errno));
  std::size_t done = 0;
  while (done < size) {
    const auto n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw InputError(format("{}: write failed after {} of {} bytes ({}); is the disk full?", path,
                              done, size, why));
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  GEMEL_THROW_IF_NOT(synced, InputError, "{}: cannot be flushed to disk ({})", path,
                     std::strerror(errno));
  commitTempFile(temp, path);
  guard.release();
}

std::vector<char> readFile(const std::string& path, const std::string& what) {
  GEMEL_THROW_IF_NOT(fs::exists(path), InputError, "{}: {} does not exist; check the path", path,
                     what);
  GEMEL_THROW_IF_NOT(!fs::is_directory(path), InputError, "{}: {} is a directory; expected a file",
                     path, what);
  std::ifstream in(path, std::ios::binary);
  GEMEL_THROW_IF_NOT(in.good(), InputError, "{}: {} cannot be opened; check its permissions", path,
                     what);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TempFileGuard::~TempFileGuard() {
  if (!path_.empty()) std::remove(path_.c_str());
}

}  // namespace gemel
