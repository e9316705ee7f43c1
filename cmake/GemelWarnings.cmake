# gemel_warnings: an INTERFACE target that carries the project's warning flags, so that
# only our own targets get them (never the third-party code they include).
add_library(gemel_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(gemel_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  if(GEMEL_WERROR)
    target_compile_options(gemel_warnings INTERFACE -Werror)
  endif()
endif()
