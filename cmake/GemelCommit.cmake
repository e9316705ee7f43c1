# Run at build time (cmake -P): writes OUT, a C++ file defining gemel's git commit, and leaves
# it untouched when the commit is unchanged so that nothing recompiles.
execute_process(
  COMMAND git -C "${SOURCE_DIR}" describe --always --dirty --abbrev=12
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
endif()
set(template [=[// Generated at build time by cmake/GemelCommit.cmake.
namespace gemel::cli {
extern const char* const kCommit;
const char* const kCommit = "@commit@";
}  // namespace gemel::cli
]=])
string(CONFIGURE "${template}" text @ONLY)
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL text)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${text}")
