#pragma once
// Mixed precision: autocast scopes for the forward pass (weights, optimizer state and
// checkpoints stay fp32).
#include <string>

#include <torch/types.h>

namespace gemel::train {

enum class Precision { kFp32, kBf16, kFp16 };
Precision parsePrecision(const std::string& name);  // fp32 | bf16 | fp16; UsageError
std::string toString(Precision precision);

// Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo).
bool cpuHasBf16();
// auto: bf16 on CUDA devices with bf16 (compute capability 8 or more) and on CPUs with native
// bf16, else fp32; fp32 for a TorchScript model on the CPU (`torchscript`): its strided convs
// over 1x1 maps would meet LibTorch's CPU bf16 backward bug that the zoo's convs step around
// (src/models/nets.h). fp16 is for CUDA only (UsageError on the CPU).
Precision resolvePrecision(const std::string& setting, const torch::Device& device,
                           bool torchscript = false);
// A task's precision: resolvePrecision for its arch, except that auto is fp32 for a Faster
// R-CNN (its box arithmetic is fp32 in torchvision too). Training, the results' record and
// eval all take it from here.
Precision resolveTaskPrecision(const std::string& setting, const torch::Device& device,
                               const std::string& arch);
// auto: on under autocast (bf16, fp16), off in fp32 (see precision.cpp); on | off.
bool resolveChannelsLast(const std::string& setting, Precision precision);

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
