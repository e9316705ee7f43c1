#pragma once
// Mixed precision: autocast scopes for the forward pass (weights, optimizer state and
// checkpoints stay fp32).
#include <string>

#include <torch/types.h>

namespace gemel::train {

enum class Precision { kFp32, kBf16, kFp16 };
Precision parsePrecision(const std::string& name);  // fp32 | bf16 | fp16; UsageError
std::string toString(Precision precision);

// While alive, ops on `device` run in `precision` where autocast lowers them (fp32: nothing).
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::BFloat16;
};

}  // namespace gemel::train
