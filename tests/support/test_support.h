#pragma once
// Helpers shared by the test binaries: running commands, temporary directories, small files.
#include <string>

namespace gemel::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command and captures its output and exit code.
CommandResult run(const std::string& command);

// Quotes a string for /bin/sh.
std::string shellQuote(const std::string& s);

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void writeText(const std::string& path, const std::string& text);
std::string readText(const std::string& path);

}  // namespace gemel::testing
