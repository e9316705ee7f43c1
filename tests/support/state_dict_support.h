#pragma once
// Helpers of the tests that compare gemel's models with torchvision's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
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

// torchvision's own fp32 error against fp64 that a reference script measured on this machine
// (rcnn_ref.py float_errors: io["fperr.<what>"]), or 0 when it recorded none. Parity
// tolerances take the larger of a fixed bound and a small multiple of it, so that a CPU whose
// float sums round differently moves the bound with torchvision's own results.
inline double referenceFloatError(const std::map<std::string, torch::Tensor>& io,
                                  const std::string& what) {
  const auto it = io.find("fperr." + what);
  return it == io.end() ? 0.0 : it->second.item<double>();
}

}  // namespace gemel::testing
