#pragma once
// Two kinds of failure, two mechanisms (as in faiss):
//  - gemel::Error and its subclasses: the user's input is wrong (bad config, missing file, a
//    weight file for another architecture). The message names the file, key and value and says
//    what to do; the CLI prints it and exits with the error's exit code.
//  - GEMEL_ASSERT: an invariant of our own code is broken. It prints the expression, file:line
//    and aborts; it is never caught.
#include <stdexcept>
#include <string>

#include "gemel/core/format.h"

namespace gemel {

// Exit codes of the gemel executables.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,     // a bug or an unexpected failure
  kUsage = 2,        // bad command line
  kConfig = 3,       // the workload configuration is malformed or inconsistent
  kInput = 4,        // an input file (weights, dataset, results) is missing or wrong
  kBelowTarget = 5,  // gemel eval: a task measured below its accuracy target
  kComm = 6,         // an MPI or NCCL call failed (a rank died, the network, the library)
  kOutput = 7,       // an output cannot be written: a full disk, a read-only file system
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ExitCode code = ExitCode::kInput)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message, ExitCode::kUsage) {}
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(message, ExitCode::kConfig) {}
};

// A file the user gave us is missing, unreadable or does not hold what it should.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(message, ExitCode::kInput) {}
};

// An output cannot be written where the user asked: the file system is full or read-only, or
// the directory is not writable. What was there before is left as it was.
class OutputError : public Error {
 public:
  explicit OutputError(const std::string& message) : Error(message, ExitCode::kOutput) {}
};

// An MPI or NCCL call failed. The message names the call, the rank and the library's own
// error string; not the user's input, so it has an exit code of its own.
class CommError : public Error {
 public:
  explicit CommError(const std::string& message) : Error(message, ExitCode::kComm) {}
};

[[noreturn]] void assertionFailed(const char* expr, const char* file, int line,
                                  const std::string& message);

}  // namespace gemel

// Throw ErrorType(format(...)) unless cond holds. For user errors only.
#define GEMEL_THROW_IF_NOT(cond, ErrorType, ...)                \
  do {                                                          \
    if (!(cond)) throw ErrorType(::gemel::format(__VA_ARGS__)); \
  } while (0)

// Abort with the expression, file:line and a message unless cond holds. For invariants only.
#define GEMEL_ASSERT(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::gemel::assertionFailed(#cond, __FILE__, __LINE__, ::gemel::format(__VA_ARGS__)); \
  } while (0)
