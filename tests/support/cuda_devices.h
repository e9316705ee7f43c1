#pragma once
// For the tests labelled `gpu`: skip, saying why, unless enough CUDA devices are visible.
// Without a device they show as skipped in ctest with this reason, never as passed.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#define GEMEL_REQUIRE_CUDA_DEVICES(n)                                                          \
  do {                                                                                         \
    const auto visible_ = static_cast<int>(torch::cuda::device_count());                       \
    if (visible_ < (n))                                                                        \
      GTEST_SKIP() << "needs " << (n) << " CUDA device(s), " << visible_                       \
                   << " visible on this machine (`gemel version` lists what the CUDA runtime " \
                      "finds)";                                                                \
  } while (0)
