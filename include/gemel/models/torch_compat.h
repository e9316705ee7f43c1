#pragma once
// The one place that knows which LibTorch we build against (Debian's 1.13 on CPU machines,
// pip's 2.x with CUDA on GPU hosts). Everything that differs between them is wrapped here.
#include <torch/version.h>

#define GEMEL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#include <caffe2/serialize/inline_container.h>

#include <memory>
#include <string>
#include <vector>

namespace gemel::models::compat {

// Opens a PyTorch zip archive (torch.save / torch.jit.save output).
inline std::unique_ptr<caffe2::serialize::PyTorchStreamReader> openArchive(
    const std::string& path) {
  return std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
}

// The record names of an archive, without the archive's top-level folder.
inline std::vector<std::string> recordNames(caffe2::serialize::PyTorchStreamReader& reader) {
  return reader.getAllRecords();
}

}  // namespace gemel::models::compat

#include <torch/nn/options/conv.h>

namespace gemel::models::compat {

// A Conv2d's padding as numbers ({} for "valid"/"same" string paddings, which we then name).
// The options hold a c10::variant in LibTorch 1.13 and a std::variant in 2.x; the unqualified
// visit() finds the right one by argument-dependent lookup.
template <typename ConvOptions>
std::string convPadding(const ConvOptions& options) {
  struct Visitor {
    std::string operator()(const torch::ExpandingArray<2>& p) const {
      return std::to_string((*p)[0]) + "," + std::to_string((*p)[1]);
    }
    std::string operator()(const torch::enumtype::kValid&) const { return "valid"; }
    std::string operator()(const torch::enumtype::kSame&) const { return "same"; }
  };
  return visit(Visitor{}, options.padding());
}

}  // namespace gemel::models::compat
