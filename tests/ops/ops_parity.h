#pragma once
// roi_align, nms and batched_nms against torchvision.ops: tests/ops/ops_ref.py writes random
// inputs (degenerate ones included) and torchvision's answers; these run gemel's ops on them on
// `device` and compare (CPU: roi_ops_test.cpp; CUDA: gpu_ops_test.cpp).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "gemel/models/state_dict.h"
#include "gemel/ops/roi_ops.h"
#include "test_support.h"

namespace gemel::testing {

// torchvision's answers, by name (see ops_ref.py).
inline std::map<std::string, torch::Tensor> opsReference(const TempDir& dir) {
  const auto made = run(shellQuote(GEMEL_PYTHON) + " " +
                        shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/ops/ops_ref.py") +
                        " make " + shellQuote(dir.path()));
  EXPECT_EQ(made.exit_code, 0) << made.output;
  std::map<std::string, torch::Tensor> ref;
  for (auto& [name, tensor] : models::readStateDict(dir.file("ref.pt"))) ref[name] = tensor;
  return ref;
}

inline int countCases(const std::map<std::string, torch::Tensor>& ref, const std::string& prefix,
                      const std::string& field) {
  int n = 0;
  while (ref.count(prefix + std::to_string(n) + "." + field)) ++n;
  return n;
}

inline double largestError(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0;
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Every roi_align case: output and input gradient within `tolerance` of torchvision's.
inline void checkRoiAlign(const std::map<std::string, torch::Tensor>& ref,
                          const torch::Device& device, double tolerance) {
  const int cases = countCases(ref, "ra", "output");
  ASSERT_GE(cases, 5);
  for (int k = 0; k < cases; ++k) {
    const std::string c = "ra" + std::to_string(k) + ".";
    const auto p = ref.at(c + "params");
    const auto input = ref.at(c + "input").to(device).requires_grad_();
    const auto rois = ref.at(c + "rois").to(device);
    const auto out =
        ops::roiAlign(input, rois, p[0].item<double>(), p[1].item<int64_t>(), p[2].item<int64_t>(),
                      p[3].item<int64_t>(), p[4].item<double>() != 0);
    ASSERT_EQ(out.sizes(), ref.at(c + "output").sizes()) << c;
    EXPECT_EQ(out.scalar_type(), input.scalar_type()) << c;
    EXPECT_LE(largestError(out.cpu(), ref.at(c + "output")), tolerance) << c << "output";
    (out * ref.at(c + "grad_out").to(device)).sum().backward();
    ASSERT_TRUE(input.grad().defined()) << c;
    EXPECT_LE(largestError(input.grad().cpu(), ref.at(c + "grad_input")), tolerance)
        << c << "grad_input";
  }
}

// Every nms and batched_nms case: the same indices in the same order.
inline void checkNms(const std::map<std::string, torch::Tensor>& ref, const torch::Device& device) {
  const int cases = countCases(ref, "nms", "keep");
  ASSERT_GE(cases, 4);
  for (int k = 0; k < cases; ++k) {
    const std::string c = "nms" + std::to_string(k) + ".";
    const auto keep = ops::nms(ref.at(c + "boxes").to(device), ref.at(c + "scores").to(device),
                               ref.at(c + "iou").item<double>());
    EXPECT_EQ(keep.device(), device);
    EXPECT_TRUE(torch::equal(keep.cpu(), ref.at(c + "keep")))
        << c << " kept " << keep.size(0) << ", torchvision " << ref.at(c + "keep").size(0);
  }
  const int batched = countCases(ref, "bn", "keep");
  ASSERT_GE(batched, 3);
  for (int k = 0; k < batched; ++k) {
    const std::string c = "bn" + std::to_string(k) + ".";
    const auto keep =
        ops::batchedNms(ref.at(c + "boxes").to(device), ref.at(c + "scores").to(device),
                        ref.at(c + "idxs").to(device), ref.at(c + "iou").item<double>());
    EXPECT_TRUE(torch::equal(keep.cpu(), ref.at(c + "keep")))
        << c << " kept " << keep.size(0) << ", torchvision " << ref.at(c + "keep").size(0);
  }
}

}  // namespace gemel::testing
