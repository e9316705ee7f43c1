#pragma once
// Helpers of the tests that compare gemel's models with torchvision's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "gemel/models/state_dict.h"

namespace gemel::testing {

// The torchvision reference script the parity tests run with GEMEL_PYTHON.
inline const std::string kTorchvisionRef =
    std::string(GEMEL_SOURCE_DIR) + "/tests/models/torchvision_ref.py";

// The tensor named `name` in a state_dict (a test failure, and an empty tensor, when missing).
inline torch::Tensor stateEntry(const models::StateDict& state, const std::string& name) {
  for (const auto& kv : state) {
    if (kv.first == name) return kv.second;
  }
  ADD_FAILURE() << "no entry " << name;
  return torch::zeros({1});
}

}  // namespace gemel::testing
