#include "gemel/train/precision.h"

#include <ATen/autocast_mode.h>

#include <fstream>

#include "gemel/core/error.h"
#include "gemel/dist/platform.h"
#include "gemel/models/archs.h"

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

bool cpuHasBf16() {
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      return line.find(" avx512_bf16") != std::string::npos ||
             line.find(" amx_bf16") != std::string::npos;
    }
    return false;
  }();
  return has;
}

Precision resolvePrecision(const std::string& setting, const torch::Device& device,
                           bool torchscript) {
  if (setting != "auto") {
    const auto p = parsePrecision(setting);
    GEMEL_THROW_IF_NOT(p != Precision::kFp16 || device.is_cuda(), UsageError,
                       "precision fp16 needs a CUDA device (with a gradient scaler); on the CPU "
                       "use bf16 or fp32");
    return p;
  }
  if (device.is_cuda()) {
    // bf16 tensor cores from Ampere (compute capability 8) on.
    for (const auto& d : dist::probePlatform().devices) {
      if (d.index == device.index() || (device.index() < 0 && d.index == 0))
        return d.capability_major >= 8 ? Precision::kBf16 : Precision::kFp32;
    }
    return Precision::kFp32;
  }
  return cpuHasBf16() && !torchscript ? Precision::kBf16 : Precision::kFp32;
}

Precision resolveTaskPrecision(const std::string& setting, const torch::Device& device,
                               const std::string& arch) {
  if (setting == "auto" && models::isTorchvisionDetectorArch(arch)) return Precision::kFp32;
  return resolvePrecision(setting, device, arch == models::kTorchScriptArch);
}

bool resolveChannelsLast(const std::string& setting, Precision precision) {
  if (setting == "on") return true;
  if (setting == "off") return false;
  GEMEL_THROW_IF_NOT(setting == "auto", UsageError, "channels_last '{}': expected auto, on or off",
                     setting);
  // On under autocast, off in fp32: `gemel bench` on an AVX512-BF16 CPU (four ResNets at 64 px)
  // gives 106 against 90 images/s for bf16 channels_last against contiguous, and no gain in
  // fp32 (77 against 78); on CUDA, channels_last is the layout the tensor-core convs want.
  // LibTorch 2.11's CPU bf16 strided-conv backward bug over 1x1 maps hits both layouts; the
  // zoo's convs avoid it (models/conv2d.cpp) and TorchScript models stay fp32 on the CPU.
  return precision != Precision::kFp32;
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
