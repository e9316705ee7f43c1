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

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  const auto parent = fs::path(path_).parent_path();
  GEMEL_THROW_IF_NOT(parent.empty() || fs::is_directory(parent), InputError,
                     "{}: cannot be written: directory '{}' does not exist; create it first", path_,
                     parent.string());
  temp_ = tempPathFor(path_);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  GEMEL_THROW_IF_NOT(fd_ >= 0, InputError,
                     "{}: cannot be written ({}); check that its directory is writable", path_,
                     std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) std::remove(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  GEMEL_ASSERT(fd_ >= 0, "{}: write after commit", path_);
  const char* bytes = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const auto n = ::write(fd_, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    GEMEL_THROW_IF_NOT(n > 0, InputError, "{}: write failed after {} bytes ({}); is the disk full?",
                       path_, written_ + done, std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  written_ += size;
}

void AtomicFileWriter::commit() {
  GEMEL_ASSERT(fd_ >= 0, "{}: committed twice", path_);
  const bool synced = ::fsync(fd_) == 0;
  const std::string why = synced ? "" : std::strerror(errno);
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  GEMEL_THROW_IF_NOT(synced && closed, InputError, "{}: cannot be flushed to disk ({})", path_,
                     synced ? std::strerror(errno) : why);
  commitTempFile(temp_, path_);
  temp_.clear();
}

void writeFileAtomic(const std::string& path, const char* data, std::size_t size) {
  AtomicFileWriter file(path);
  file.write(data, size);
  file.commit();
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
