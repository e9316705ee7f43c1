# gemel_warnings: an INTERFACE target that carries the project's warning flags, so that
# only our own targets get them (never the third-party code they include).
add_library(gemel_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(gemel_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # A unity translation unit includes the .cpp files, and GCC then reads a class with a
    # member of an anonymous-namespace type (a pimpl's) as if it were in a header.
    target_compile_options(gemel_warnings INTERFACE -Wno-subobject-linkage)
  endif()
  if(GEMEL_WERROR)
    target_compile_options(gemel_warnings INTERFACE -Werror)
  endif()
endif()

# Sanitizer and fuzzing builds (tests/sanitize.sh, tests/fuzz/run.sh): the flags ride on the
# same INTERFACE target, so they reach exactly our own code.
#   GEMEL_SANITIZE=ON  AddressSanitizer + UndefinedBehaviorSanitizer (halting on the first report)
#   GEMEL_FUZZ=ON      libFuzzer coverage instrumentation (clang); tests/fuzz/ adds the harnesses
option(GEMEL_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(GEMEL_FUZZ "Build the libFuzzer harnesses of tests/fuzz (needs clang)" OFF)
if(GEMEL_SANITIZE OR GEMEL_FUZZ)
  target_compile_options(gemel_warnings INTERFACE -fsanitize=address,undefined
                         -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  target_link_options(gemel_warnings INTERFACE -fsanitize=address,undefined)
endif()
if(GEMEL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "gemel: GEMEL_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14")
  endif()
  target_compile_options(gemel_warnings INTERFACE -fsanitize=fuzzer-no-link)
endif()
