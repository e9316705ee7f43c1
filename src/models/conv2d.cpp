#include <variant>

#include "nets.h"

namespace gemel::models {

torch::Tensor Conv2dImpl::forward(const torch::Tensor& input) {
  const auto& o = options;
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  bool stride_is_moot = padding && input.dim() == 4 && (o.stride()->at(0) > 1 || o.stride()->at(1) > 1) &&
                        std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
  for (int d = 0; d < 2 && stride_is_moot; ++d) {
    // The unstrided output's length; 1 means one output, which the strided conv also gives.
    const int64_t reach = input.size(2 + d) + 2 * (*padding)->at(d) -
                          o.dilation()->at(d) * (o.kernel_size()->at(d) - 1);
    stride_is_moot = reach == 1;
  }
  if (!stride_is_moot) return torch::nn::Conv2dImpl::forward(input);
  return torch::conv2d(input, weight, bias, /*stride=*/1, **padding, o.dilation(), o.groups());
}

}  // namespace gemel::models
