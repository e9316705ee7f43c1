#include "gemel/ops/boxes.h"

#include <torch/torch.h>

#include "gemel/core/error.h"

namespace gemel::ops {

namespace {
using torch::indexing::None;
using torch::indexing::Slice;
}  // namespace

torch::Tensor boxIou(const torch::Tensor& a, const torch::Tensor& b) {
  const auto area = [](const torch::Tensor& x) {
    return (x.select(1, 2) - x.select(1, 0)) * (x.select(1, 3) - x.select(1, 1));
  };
  const auto lt = torch::max(a.index({Slice(), None, Slice(None, 2)}),
                             b.index({None, Slice(), Slice(None, 2)}));
  const auto rb = torch::min(a.index({Slice(), None, Slice(2, None)}),
                             b.index({None, Slice(), Slice(2, None)}));
  const auto wh = (rb - lt).clamp_min(0);
  const auto inter = wh.select(2, 0) * wh.select(2, 1);
  return inter / (area(a).unsqueeze(1) + area(b).unsqueeze(0) - inter);
}

torch::Tensor clipBoxesToImage(const torch::Tensor& boxes, int64_t height, int64_t width) {
  const auto x = boxes.index({"...", Slice(0, None, 2)}).clamp(0, width);
  const auto y = boxes.index({"...", Slice(1, None, 2)}).clamp(0, height);
  return torch::stack({x, y}, boxes.dim()).reshape(boxes.sizes());
}

torch::Tensor resizeBoxes(const torch::Tensor& boxes, std::array<int64_t, 2> from,
                          std::array<int64_t, 2> to) {
  const float rh = static_cast<float>(to[0]) / static_cast<float>(from[0]);
  const float rw = static_cast<float>(to[1]) / static_cast<float>(from[1]);
  const auto b = boxes.unbind(1);
  return torch::stack({b[0] * rw, b[1] * rh, b[2] * rw, b[3] * rh}, 1);
}

torch::Tensor removeSmallBoxes(const torch::Tensor& boxes, double min_size) {
  const auto ws = boxes.select(-1, 2) - boxes.select(-1, 0);
  const auto hs = boxes.select(-1, 3) - boxes.select(-1, 1);
  return torch::nonzero((ws >= min_size) & (hs >= min_size)).select(1, 0);
}

torch::Tensor BoxCoder::encode(const torch::Tensor& reference,
                               const torch::Tensor& proposals) const {
  const auto column = [](const torch::Tensor& t, int64_t k) { return t.select(1, k).unsqueeze(1); };
  const auto opts = reference.options();
  const auto w =
      torch::tensor(std::vector<double>(weights.begin(), weights.end()), opts.dtype(torch::kDouble))
          .to(opts);
  const auto ex_w = column(proposals, 2) - column(proposals, 0);
  const auto ex_h = column(proposals, 3) - column(proposals, 1);
  const auto ex_x = column(proposals, 0) + 0.5 * ex_w;
  const auto ex_y = column(proposals, 1) + 0.5 * ex_h;
  const auto gt_w = column(reference, 2) - column(reference, 0);
  const auto gt_h = column(reference, 3) - column(reference, 1);
  const auto gt_x = column(reference, 0) + 0.5 * gt_w;
  const auto gt_y = column(reference, 1) + 0.5 * gt_h;
  return torch::cat({w[0] * (gt_x - ex_x) / ex_w, w[1] * (gt_y - ex_y) / ex_h,
                     w[2] * torch::log(gt_w / ex_w), w[3] * torch::log(gt_h / ex_h)},
                    1);
}

torch::Tensor BoxCoder::decode(const torch::Tensor& codes_in, const torch::Tensor& boxes_in) const {
  const int64_t n = boxes_in.size(0);
  const auto codes = n > 0 ? codes_in.reshape({n, -1}) : codes_in;
  const auto boxes = boxes_in.to(codes.scalar_type());
  const auto widths = boxes.select(1, 2) - boxes.select(1, 0);
  const auto heights = boxes.select(1, 3) - boxes.select(1, 1);
  const auto ctr_x = boxes.select(1, 0) + 0.5 * widths;
  const auto ctr_y = boxes.select(1, 1) + 0.5 * heights;
  const auto every4 = [&](int64_t k) { return codes.index({Slice(), Slice(k, None, 4)}); };
  const auto dx = every4(0) / weights[0], dy = every4(1) / weights[1];
  const auto dw = (every4(2) / weights[2]).clamp_max(clip);
  const auto dh = (every4(3) / weights[3]).clamp_max(clip);
  const auto pred_x = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
  const auto pred_y = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
  const auto half_w = 0.5 * (torch::exp(dw) * widths.unsqueeze(1));
  const auto half_h = 0.5 * (torch::exp(dh) * heights.unsqueeze(1));
  auto out = torch::stack({pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h}, 2)
                 .flatten(1);
  return n > 0 ? out.reshape({n, -1, 4}) : out;
}

torch::Tensor Matcher::operator()(const torch::Tensor& quality) const {
  GEMEL_THROW_IF_NOT(quality.size(0) > 0, InputError,
                     "an image has no ground-truth boxes to match during training");
  GEMEL_THROW_IF_NOT(quality.size(1) > 0, InputError,
                     "an image has no proposal boxes to match during training");
  auto [values, matches] = quality.max(0);
  const auto all = allow_low_quality ? matches.clone() : torch::Tensor();
  const auto below = values < low;
  const auto between = (values >= low) & (values < high);
  matches.masked_fill_(below, kBelowLow);
  matches.masked_fill_(between, kBetween);
  if (allow_low_quality) {
    const auto best = std::get<0>(quality.max(1));
    const auto preds = torch::nonzero(quality == best.unsqueeze(1)).select(1, 1);
    matches.index_put_({preds}, all.index({preds}));
  }
  return matches;
}

int64_t AnchorGenerator::anchorsPerLocation(std::size_t level) const {
  return static_cast<int64_t>(sizes.at(level).size() * aspect_ratios.at(level).size());
}

torch::Tensor AnchorGenerator::operator()(std::array<int64_t, 2> image,
                                          const std::vector<std::array<int64_t, 2>>& maps,
                                          const torch::TensorOptions& options) const {
  GEMEL_THROW_IF_NOT(maps.size() == sizes.size() && maps.size() == aspect_ratios.size(), InputError,
                     "the anchor generator has sizes for {} feature maps and aspect ratios for "
                     "{}, and the backbone gives {}",
                     sizes.size(), aspect_ratios.size(), maps.size());
  std::vector<torch::Tensor> levels;
  for (std::size_t l = 0; l < maps.size(); ++l) {
    // Cell anchors, as torchvision makes them (in the feature maps' dtype), rounded.
    const auto scales = torch::tensor(sizes[l], torch::kDouble).to(options.dtype());
    const auto ratios = torch::tensor(aspect_ratios[l], torch::kDouble).to(options.dtype());
    const auto h_ratios = torch::sqrt(ratios);
    const auto w_ratios = 1 / h_ratios;
    const auto ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).reshape(-1);
    const auto hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).reshape(-1);
    const auto cell = (torch::stack({-ws, -hs, ws, hs}, 1) / 2).round().to(options.device());
    const auto [gh, gw] = maps[l];
    const int64_t stride_h = image[0] / gh, stride_w = image[1] / gw;
    const auto int32 = options.dtype(torch::kInt);
    const auto sx = torch::arange(0, gw, int32) * stride_w;
    const auto sy = torch::arange(0, gh, int32) * stride_h;
    const auto grid = torch::meshgrid({sy, sx}, "ij");
    const auto shift_x = grid[1].reshape(-1), shift_y = grid[0].reshape(-1);
    const auto shifts = torch::stack({shift_x, shift_y, shift_x, shift_y}, 1);
    levels.push_back((shifts.view({-1, 1, 4}) + cell.view({1, -1, 4})).reshape({-1, 4}));
  }
  return torch::cat(levels);
}

}  // namespace gemel::ops
