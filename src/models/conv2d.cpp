#include <variant>

#include "nets.h"

namespace gemel::models {
namespace {

// The convolution as one matrix product over the input's taps, in NHWC: the taps are strided
// slices of the padded input, concatenated on the channel axis in (kh, kw, C) order, which is
// the weight's order once it is permuted to [Co, kh, kw, C]. Autograd differentiates the
// slices, the concatenation and the product; under autocast the product runs in bf16 or fp16,
// as the convolution would. The output has the input's memory format.
torch::Tensor convAsGemm(const torch::Tensor& input, const torch::Tensor& weight,
                         const torch::Tensor& bias, const torch::nn::detail::ConvNdOptions<2>& o,
                         const std::array<int64_t, 2>& padding, const std::array<int64_t, 2>& out) {
  const auto n = input.size(0);
  const auto co = weight.size(0);
  const auto kh = o.kernel_size()->at(0), kw = o.kernel_size()->at(1);
  const auto sh = o.stride()->at(0), sw = o.stride()->at(1);
  const auto dh = o.dilation()->at(0), dw = o.dilation()->at(1);
  auto x = input.permute({0, 2, 3, 1});
  if (padding[0] > 0 || padding[1] > 0)
    x = torch::constant_pad_nd(x, {0, 0, padding[1], padding[1], padding[0], padding[0]});
  std::vector<torch::Tensor> taps;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      taps.push_back(x.slice(1, i * dh, i * dh + sh * (out[0] - 1) + 1, sh)
                         .slice(2, j * dw, j * dw + sw * (out[1] - 1) + 1, sw));
    }
  }
  auto cols = taps.size() == 1 ? taps[0] : torch::cat(taps, 3);
  cols = cols.reshape({-1, cols.size(3)});
  const auto w = weight.permute({0, 2, 3, 1}).reshape({co, -1}).t();
  auto y = bias.defined() ? torch::addmm(bias, cols, w) : torch::mm(cols, w);
  y = y.view({n, out[0], out[1], co}).permute({0, 3, 1, 2});
  return input.is_contiguous(torch::MemoryFormat::ChannelsLast) ? y : y.contiguous();
}

}  // namespace

torch::Tensor Conv2dImpl::forward(const torch::Tensor& input) {
  const auto& o = options;
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!padding || input.dim() != 4 ||
      !std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
    return torch::nn::Conv2dImpl::forward(input);
  std::array<int64_t, 2> out{};
  std::array<int64_t, 2> pad{(*padding)->at(0), (*padding)->at(1)};
  bool stride_is_moot = o.stride()->at(0) > 1 || o.stride()->at(1) > 1;
  for (int d = 0; d < 2; ++d) {
    // The unstrided output's length; 1 means one output, which the strided conv also gives.
    const int64_t reach =
        input.size(2 + d) + 2 * pad[d] - o.dilation()->at(d) * (o.kernel_size()->at(d) - 1);
    stride_is_moot = stride_is_moot && reach == 1;
    out[d] = reach > 0 ? (reach - 1) / o.stride()->at(d) + 1 : 0;
  }
  const bool one_by_one = o.kernel_size()->at(0) == 1 && o.kernel_size()->at(1) == 1;
  if (input.device().is_cpu() && o.groups() == 1 && out[0] > 0 && out[1] > 0 &&
      out[0] * out[1] <= (one_by_one ? 16 : 4))
    return convAsGemm(input, weight, bias, o, pad, out);
  if (!stride_is_moot) return torch::nn::Conv2dImpl::forward(input);
  return torch::conv2d(input, weight, bias, /*stride=*/1, **padding, o.dilation(), o.groups());
}

}  // namespace gemel::models
