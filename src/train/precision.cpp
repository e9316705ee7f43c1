#include "gemel/train/precision.h"

#include <ATen/autocast_mode.h>

#include "gemel/core/error.h"

namespace gemel::train {

Precision parsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  throw UsageError(format("precision '{}': expected fp32, bf16 or fp16", name));
}

std::string toString(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "?";
}

AutocastScope::AutocastScope(const torch::Device& device, Precision precision) {
  if (precision == Precision::kFp32) return;
  type_ = device.type();
  active_ = true;
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(
      type_, precision == Precision::kBf16 ? c10::ScalarType::BFloat16 : c10::ScalarType::Half);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
}

}  // namespace gemel::train
