#include "gemel/core/files.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
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

std::string writeFailure(const std::string& path, int err) {
  // The nearest directory that exists: the one whose file system refused.
  auto dir = fs::path(path).parent_path();
  std::error_code ec;
  while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.parent_path()) dir = dir.parent_path();
  if (dir.empty()) dir = ".";
  std::string why = err != 0 ? std::strerror(err) : "unknown cause";
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) == 0) {
    const auto free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    if ((st.f_flag & ST_RDONLY) != 0 || err == EROFS) {
      why += format(": the file system holding {} is read-only", dir.string());
    } else if (err == ENOSPC || err == EDQUOT || free_bytes < (uint64_t(1) << 20)) {
      why +=
          format(": the file system holding {} is full ({} bytes free)", dir.string(), free_bytes);
    }
  }
  return why;
}

void requireWritableDirectory(const std::string& dir, const std::string& remedy) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  GEMEL_THROW_IF_NOT(!ec, OutputError, "{}: cannot create the directory ({}); {}", dir,
                     writeFailure((fs::path(dir) / "x").string(), ec.value()), remedy);
  GEMEL_THROW_IF_NOT(fs::is_directory(dir), OutputError, "{}: not a directory; {}", dir, remedy);
  const auto probe = tempPathFor((fs::path(dir) / "write-probe").string());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    const char byte = 0;
    if (::write(fd, &byte, 1) != 1) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    std::remove(probe.c_str());
  }
  GEMEL_THROW_IF_NOT(err == 0, OutputError, "{}: cannot write there ({}); {}", dir,
                     writeFailure(probe, err), remedy);
}

void commitTempFile(const std::string& temp, const std::string& path) {
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = writeFailure(path, errno);
    std::remove(temp.c_str());
    throw OutputError(
        format("{}: cannot be written ({}); check that its directory is writable", path, why));
  }
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  const auto parent = fs::path(path_).parent_path();
  GEMEL_THROW_IF_NOT(parent.empty() || fs::is_directory(parent), OutputError,
                     "{}: cannot be written: directory '{}' does not exist; create it first", path_,
                     parent.string());
  temp_ = tempPathFor(path_);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  GEMEL_THROW_IF_NOT(fd_ >= 0, OutputError,
                     "{}: cannot be written ({}); check that its directory is writable", path_,
                     writeFailure(path_, errno));
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
    GEMEL_THROW_IF_NOT(n > 0, OutputError,
                       "{}: write failed after {} bytes ({}); the file is left as it was", path_,
                       written_ + done, writeFailure(path_, n < 0 ? errno : ENOSPC));
    done += static_cast<std::size_t>(n);
  }
  written_ += size;
}

void AtomicFileWriter::commit() {
  GEMEL_ASSERT(fd_ >= 0, "{}: committed twice", path_);
  const bool synced = ::fsync(fd_) == 0;
  const int sync_errno = synced ? 0 : errno;
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  GEMEL_THROW_IF_NOT(synced && closed, OutputError,
                     "{}: cannot be flushed to disk ({}); the file is left as it was", path_,
                     writeFailure(path_, synced ? errno : sync_errno));
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
