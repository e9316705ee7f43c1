#pragma once
// Helpers shared by the test binaries: running commands, temporary directories, small files.
#include <functional>
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

// A directory made once and then shared by every test process of one build (ctest runs each
// test case in a process of its own, so a fixture's SetUpTestSuite would otherwise redo its
// work per case): <build>/test-cache/<name>-<stamp of the gemel binary>. The first caller
// fills it with `make`, under a lock, and marks it done; a failed `make` (false) leaves
// nothing and returns "". Tests that write into it must use names of their own.
std::string sharedTestDir(const std::string& name, const std::string& gemel_binary,
                          const std::function<bool(const std::string& dir)>& make);

// Makes `dir` a working copy of `shared`: a symbolic link to each of its entries.
void linkEntries(const std::string& shared, const std::string& dir);

void writeText(const std::string& path, const std::string& text);
std::string readText(const std::string& path);

}  // namespace gemel::testing
