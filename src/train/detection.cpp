#include "gemel/train/detection.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <tuple>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/json.h"
#include "gemel/ops/roi_ops.h"

namespace gemel::train {

std::vector<YoloHead> yoloHeads(const models::DarknetNet& net) {
  std::vector<YoloHead> heads;
  for (const auto& l : net.layers) {
    if (l.type != models::DarknetLayerType::kYolo) continue;
    YoloHead h;
    for (const int m : l.mask) {
      h.anchors.push_back(
          {static_cast<float>(l.anchors[m].first), static_cast<float>(l.anchors[m].second)});
    }
    h.stride = l.scale;
    heads.push_back(std::move(h));
  }
  return heads;
}

std::vector<torch::Tensor> splitHeads(const torch::Tensor& raw, const std::vector<YoloHead>& heads,
                                      int64_t image_size) {
  std::vector<torch::Tensor> out;
  int64_t at = 0;
  const int64_t n = raw.size(0), no = raw.size(2);
  for (const auto& h : heads) {
    const int64_t na = static_cast<int64_t>(h.anchors.size()), g = image_size / h.stride;
    out.push_back(raw.narrow(1, at, na * g * g).view({n, na, g, g, no}));
    at += na * g * g;
  }
  GEMEL_THROW_IF_NOT(at == raw.size(1), InputError,
                     "the model's output has {} boxes per image, but its heads at {} px make {}",
                     raw.size(1), image_size, at);
  return out;
}

namespace {

// pytorchyolo's bbox_iou(box1, box2, x1y1x2y2=False, CIoU=True): p and t are [n, 4] (cx, cy,
// w, h); the formula and its epsilons as they are there, so the loss matches to rounding.
torch::Tensor completeIou(const torch::Tensor& p, const torch::Tensor& t) {
  const double eps = 1e-9;
  auto b1x1 = p.select(1, 0) - p.select(1, 2) / 2, b1x2 = p.select(1, 0) + p.select(1, 2) / 2;
  auto b1y1 = p.select(1, 1) - p.select(1, 3) / 2, b1y2 = p.select(1, 1) + p.select(1, 3) / 2;
  auto b2x1 = t.select(1, 0) - t.select(1, 2) / 2, b2x2 = t.select(1, 0) + t.select(1, 2) / 2;
  auto b2y1 = t.select(1, 1) - t.select(1, 3) / 2, b2y2 = t.select(1, 1) + t.select(1, 3) / 2;
  auto inter = (torch::min(b1x2, b2x2) - torch::max(b1x1, b2x1)).clamp(0) *
               (torch::min(b1y2, b2y2) - torch::max(b1y1, b2y1)).clamp(0);
  auto w1 = b1x2 - b1x1, h1 = b1y2 - b1y1 + eps;
  auto w2 = b2x2 - b2x1, h2 = b2y2 - b2y1 + eps;
  auto uni = w1 * h1 + w2 * h2 - inter + eps;
  auto iou = inter / uni;
  auto cw = torch::max(b1x2, b2x2) - torch::min(b1x1, b2x1);
  auto ch = torch::max(b1y2, b2y2) - torch::min(b1y1, b2y1);
  auto c2 = cw.pow(2) + ch.pow(2) + eps;
  auto rho2 = ((b2x1 + b2x2 - b1x1 - b1x2).pow(2) + (b2y1 + b2y2 - b1y1 - b1y2).pow(2)) / 4;
  auto v = (4 / (M_PI * M_PI)) * torch::pow(torch::atan(w2 / h2) - torch::atan(w1 / h1), 2);
  torch::Tensor alpha;
  {
    torch::NoGradGuard no_grad;
    alpha = v / ((1 + eps) - iou + v);
  }
  return iou - (rho2 / c2 + v * alpha);
}

}  // namespace

YoloLoss yoloLoss(const torch::Tensor& raw, const std::vector<YoloHead>& heads, int64_t image_size,
                  const torch::Tensor& targets_in) {
  const auto device = raw.device();
  const auto preds = splitHeads(raw, heads, image_size);
  const auto targets = targets_in.to(device, torch::kFloat);
  const int64_t nt = targets.size(0);
  auto fopt = torch::TensorOptions().dtype(torch::kFloat).device(device);
  auto lbox = torch::zeros({1}, fopt), lobj = torch::zeros({1}, fopt),
       lcls = torch::zeros({1}, fopt);
  for (std::size_t i = 0; i < heads.size(); ++i) {
    const auto& h = heads[i];
    const auto& p = preds[i];  // [N, na, ny, nx, no]
    const int64_t na = static_cast<int64_t>(h.anchors.size()), ny = p.size(2), nx = p.size(3);
    // build_targets: every target once per anchor, (image, class, x, y, w, h, anchor) in grid
    // units, kept where the anchor's shape is within 4x of the box's on both axes.
    std::vector<float> anchor_values;
    for (const auto& a : h.anchors) {
      anchor_values.push_back(a[0] / static_cast<float>(h.stride));
      anchor_values.push_back(a[1] / static_cast<float>(h.stride));
    }
    auto anchors = torch::tensor(anchor_values, fopt).view({na, 2});
    auto ai = torch::arange(na, fopt).view({na, 1}).repeat({1, nt});
    auto all = torch::cat({targets.repeat({na, 1, 1}), ai.unsqueeze(2)}, 2);  // [na, nt, 7]
    auto gain = torch::tensor({1.0f, 1.0f, float(nx), float(ny), float(nx), float(ny), 1.0f}, fopt);
    auto t = all * gain;
    if (nt > 0) {
      auto r = t.narrow(2, 4, 2) / anchors.unsqueeze(1);
      // 1 / r as Python computes it (r.reciprocal()), so ratios at the bound decide alike.
      auto keep = std::get<0>(torch::max(r, r.reciprocal()).max(2)) < 4;
      t = t.index({keep});
    } else {
      t = all[0];
    }
    auto b = t.select(1, 0).to(torch::kLong), c = t.select(1, 1).to(torch::kLong);
    auto gxy = t.narrow(1, 2, 2), gwh = t.narrow(1, 4, 2);
    auto gij = gxy.to(torch::kLong);
    // pytorchyolo clamps the cell indices in place, so the box offsets below use the clamped
    // cells too (a box centred on the far edge gets offset 1.0).
    gij.select(1, 0).clamp_(0, nx - 1);
    gij.select(1, 1).clamp_(0, ny - 1);
    auto gi = gij.select(1, 0), gj = gij.select(1, 1);
    auto a = t.select(1, 6).to(torch::kLong);
    auto tbox = torch::cat({gxy - gij, gwh}, 1);
    auto anch = anchors.index({a});

    auto tobj = torch::zeros_like(p.select(4, 0));
    const int64_t n = b.size(0);
    if (n > 0) {
      auto ps = p.index({b, a, gj, gi});
      auto pxy = ps.narrow(1, 0, 2).sigmoid();
      auto pwh = torch::exp(ps.narrow(1, 2, 2)) * anch;
      auto iou = completeIou(torch::cat({pxy, pwh}, 1), tbox);
      lbox = lbox + (1.0 - iou).mean();
      tobj.index_put_({b, a, gj, gi}, iou.detach().clamp(0).to(tobj.scalar_type()));
      if (ps.size(1) - 5 > 1) {
        auto tc = torch::zeros_like(ps.narrow(1, 5, ps.size(1) - 5));
        tc.index_put_(
            {torch::arange(n, torch::TensorOptions().dtype(torch::kLong).device(device)), c},
            torch::ones({n}, fopt));
        lcls = lcls + torch::binary_cross_entropy_with_logits(ps.narrow(1, 5, ps.size(1) - 5), tc);
      }
    }
    lobj = lobj + torch::binary_cross_entropy_with_logits(p.select(4, 4), tobj);
  }
  lbox = lbox * 0.05;
  lcls = lcls * 0.5;
  return {lbox + lobj + lcls, lbox, lobj, lcls};
}

torch::Tensor decodeYolo(const torch::Tensor& raw, const std::vector<YoloHead>& heads,
                         int64_t image_size) {
  const auto preds = splitHeads(raw, heads, image_size);
  std::vector<torch::Tensor> out;
  const auto fopt = torch::TensorOptions().dtype(raw.scalar_type()).device(raw.device());
  for (std::size_t i = 0; i < heads.size(); ++i) {
    const auto& h = heads[i];
    const auto& p = preds[i];
    const int64_t n = p.size(0), na = p.size(1), ny = p.size(2), nx = p.size(3);
    auto ys = torch::arange(ny, fopt), xs = torch::arange(nx, fopt);
    auto grid =
        torch::stack({xs.view({1, nx}).expand({ny, nx}), ys.view({ny, 1}).expand({ny, nx})}, 2)
            .view({1, 1, ny, nx, 2});
    std::vector<float> av;
    for (const auto& a : h.anchors) av.insert(av.end(), {a[0], a[1]});
    auto anchor_grid = torch::tensor(av, fopt).view({1, na, 1, 1, 2});
    const double stride = static_cast<double>(h.stride);
    auto xy = (p.narrow(4, 0, 2).sigmoid() + grid) * stride;
    auto wh = torch::exp(p.narrow(4, 2, 2)) * anchor_grid;
    auto rest = p.narrow(4, 4, p.size(4) - 4).sigmoid();
    out.push_back(torch::cat({xy, wh, rest}, 4).view({n, -1, p.size(4)}));
  }
  return torch::cat(out, 1);
}

std::vector<torch::Tensor> nonMaxSuppression(const torch::Tensor& decoded, const NmsOptions& o) {
  const int64_t nc = decoded.size(2) - 5;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < decoded.size(0); ++i) {
    auto x = decoded[i];
    x = x.index({x.select(1, 4) > o.conf});
    if (x.size(0) == 0) {
      out.push_back(torch::zeros({0, 6}, decoded.options()));
      continue;
    }
    auto cls_conf = x.narrow(1, 5, nc) * x.narrow(1, 4, 1);
    auto xy = x.narrow(1, 0, 2), half = x.narrow(1, 2, 2) / 2;
    auto box = torch::cat({xy - half, xy + half}, 1);
    torch::Tensor det;
    if (nc > 1) {
      auto ij = (cls_conf > o.conf).nonzero();  // row-major: box by box, classes in order
      auto bi = ij.select(1, 0), cj = ij.select(1, 1);
      det = torch::cat({box.index_select(0, bi), cls_conf.index({bi, cj}).unsqueeze(1),
                        cj.unsqueeze(1).to(x.scalar_type())},
                       1);
    } else {
      auto [conf, j] = cls_conf.max(1, true);
      det = torch::cat({box, conf, j.to(x.scalar_type())}, 1).index({conf.view(-1) > o.conf});
    }
    if (det.size(0) > o.max_boxes) {
      det = det.index_select(
          0, std::get<1>(det.select(1, 4).sort(true, 0, true)).narrow(0, 0, o.max_boxes));
    }
    if (det.size(0) == 0) {
      out.push_back(torch::zeros({0, 6}, decoded.options()));
      continue;
    }
    // Class-aware: what pytorchyolo gets by offsetting each class's boxes by class * 4096 px
    // before one NMS. Here each class is suppressed on its own (the same result for boxes
    // inside 4096 px, and sum n_c^2 work instead of n^2), then the kept boxes merge by score.
    const auto classes = det.select(1, 5).to(torch::kCPU, torch::kLong).contiguous();
    const int64_t* cls = classes.data_ptr<int64_t>();
    std::map<int64_t, std::vector<int64_t>> members;
    for (int64_t k = 0; k < det.size(0); ++k) members[cls[k]].push_back(k);
    torch::Tensor keep;
    if (members.size() == 1) {
      keep = ops::nms(det.narrow(1, 0, 4), det.select(1, 4), o.iou);
    } else {
      std::vector<torch::Tensor> kept;
      for (const auto& [c, rows] : members) {
        auto idx = torch::tensor(rows, torch::kLong).to(det.device());
        const auto mine = det.index_select(0, idx);
        kept.push_back(
            idx.index_select(0, ops::nms(mine.narrow(1, 0, 4), mine.select(1, 4), o.iou)));
      }
      keep = torch::cat(kept);
      // By score, then candidate order (what a stable sort of all candidates gives).
      keep = std::get<0>(keep.sort());
      keep = keep.index_select(
          0, std::get<1>(det.select(1, 4).index_select(0, keep).sort(true, 0, true)));
    }
    if (keep.size(0) > o.max_det) keep = keep.narrow(0, 0, o.max_det);
    out.push_back(det.index_select(0, keep));
  }
  return out;
}

namespace {

constexpr int kMaxDetsPerClass = 100;  // pycocotools' maxDets[-1]

// np.linspace(start, stop, num)[i]: i * step + start, with the last value exactly `stop`.
double linspace(double start, double stop, int num, int i) {
  if (i == num - 1) return stop;
  return static_cast<double>(i) * ((stop - start) / (num - 1)) + start;
}

int64_t scoreBits(double score) {
  int64_t bits;
  std::memcpy(&bits, &score, sizeof bits);
  return bits;
}

double scoreOf(int64_t bits) {
  double score;
  std::memcpy(&score, &bits, sizeof score);
  return score;
}

}  // namespace

void cocoRecords(const torch::Tensor& detections, const std::vector<data::Box>& truth,
                 int64_t image, int64_t num_classes, std::vector<int64_t>& records,
                 int64_t* gt_counts) {
  const auto d = detections.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t k = d.size(0);
  const float* dp = d.data_ptr<float>();
  std::map<int64_t, std::vector<int64_t>> dets_of;  // class -> detection rows
  for (int64_t i = 0; i < k; ++i) {
    const auto c = static_cast<int64_t>(dp[6 * i + 5]);
    if (c >= 0 && c < num_classes) dets_of[c].push_back(i);
  }
  std::map<int64_t, std::vector<std::size_t>> truth_of;
  for (std::size_t g = 0; g < truth.size(); ++g) {
    const auto c = static_cast<int64_t>(truth[g].cls);
    if (c < 0 || c >= num_classes) continue;
    truth_of[c].push_back(g);
    ++gt_counts[c];
  }
  double thresholds[kCocoThresholds];
  for (int t = 0; t < kCocoThresholds; ++t) thresholds[t] = linspace(0.5, 0.95, kCocoThresholds, t);
  for (auto& [c, rows] : dets_of) {
    // The class's detections by score (stable), at most 100.
    std::stable_sort(rows.begin(), rows.end(),
                     [&](int64_t a, int64_t b) { return dp[6 * a + 4] > dp[6 * b + 4]; });
    if (rows.size() > kMaxDetsPerClass) rows.resize(kMaxDetsPerClass);
    const auto& gts = truth_of[c];
    std::vector<std::vector<char>> gt_taken(kCocoThresholds, std::vector<char>(gts.size(), 0));
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const float* det = dp + 6 * rows[r];
      // IoU as pycocotools' bbIou computes it, in double, from (x, y, w, h).
      const double dx = det[0], dy = det[1], dw = double(det[2]) - det[0],
                   dh = double(det[3]) - det[1];
      std::vector<double> ious(gts.size());
      for (std::size_t g = 0; g < gts.size(); ++g) {
        const auto& b = truth[gts[g]];
        const double gx = b.x1, gy = b.y1, gw = double(b.x2) - b.x1, gh = double(b.y2) - b.y1;
        const double w = std::min(dx + dw, gx + gw) - std::max(dx, gx);
        const double h = std::min(dy + dh, gy + gh) - std::max(dy, gy);
        if (w <= 0 || h <= 0) {
          ious[g] = 0;
          continue;
        }
        const double inter = w * h;
        ious[g] = inter / (dw * dh + gw * gh - inter);
      }
      int64_t matches = 0;
      for (int t = 0; t < kCocoThresholds; ++t) {
        double best = std::min(thresholds[t], 1 - 1e-10);
        int m = -1;
        for (std::size_t g = 0; g < gts.size(); ++g) {
          if (gt_taken[t][g] || ious[g] < best) continue;
          best = ious[g];
          m = static_cast<int>(g);
        }
        if (m < 0) continue;
        gt_taken[t][m] = 1;
        matches |= int64_t(1) << t;
      }
      records.insert(records.end(),
                     {c, image, static_cast<int64_t>(r), scoreBits(static_cast<double>(det[4])),
                      matches, scoreBits(dx), scoreBits(dy), scoreBits(dw), scoreBits(dh)});
    }
  }
}

std::vector<CocoDetection> cocoDetections(const std::vector<int64_t>& records) {
  GEMEL_ASSERT(records.size() % kCocoRecordSize == 0, "detection records of the wrong size");
  std::vector<CocoDetection> out(records.size() / kCocoRecordSize);
  std::vector<int64_t> rank(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int64_t* r = records.data() + i * kCocoRecordSize;
    out[i].category = r[0];
    out[i].image = r[1];
    rank[i] = r[2];
    out[i].score = scoreOf(r[3]);
    for (int k = 0; k < 4; ++k) out[i].bbox[k] = scoreOf(r[5 + k]);
  }
  // (image, class, rank by score): the ranks' order of arrival does not show.
  std::vector<std::size_t> order(out.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(out[a].image, out[a].category, rank[a]) <
           std::tie(out[b].image, out[b].category, rank[b]);
  });
  std::vector<CocoDetection> sorted;
  sorted.reserve(out.size());
  for (const auto i : order) sorted.push_back(out[i]);
  return sorted;
}

void writeCocoResults(const std::string& path, const std::vector<CocoDetection>& detections) {
  JsonWriter j;
  j.beginArray();
  for (const auto& d : detections) {
    j.beginObject();
    j.key("image_id").value(d.image);
    j.key("category_id").value(d.category);
    j.key("score").value(d.score);
    j.key("bbox").beginArray();
    for (const double v : d.bbox) j.value(v);
    j.endArray();
    j.endObject();
  }
  j.endArray();
  const auto text = j.str() + "\n";
  writeFileAtomic(path, text.data(), text.size());
}

CocoAp cocoScore(const std::vector<int64_t>& records, const int64_t* gt_counts,
                 int64_t num_classes) {
  GEMEL_ASSERT(records.size() % kCocoRecordSize == 0, "detection records of the wrong size");
  const std::size_t n = records.size() / kCocoRecordSize;
  std::vector<std::vector<std::size_t>> of_class(static_cast<std::size_t>(num_classes));
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t c = records[i * kCocoRecordSize];
    if (c >= 0 && c < num_classes) of_class[c].push_back(i);
  }
  constexpr int kRecall = 101;
  double recall_points[kRecall];
  for (int r = 0; r < kRecall; ++r) recall_points[r] = linspace(0.0, 1.0, kRecall, r);
  const double eps = std::nextafter(1.0, 2.0) - 1.0;  // np.spacing(1)
  double sum_all = 0, sum_50 = 0;
  int classes = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    const int64_t npig = gt_counts[c];
    if (npig == 0) continue;  // pycocotools leaves such a class out of the mean
    ++classes;
    auto& idx = of_class[c];
    // pycocotools: images in id order, each image's detections by score, then a stable sort of
    // all of them by score.
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
      const double sa = scoreOf(records[a * kCocoRecordSize + 3]);
      const double sb = scoreOf(records[b * kCocoRecordSize + 3]);
      if (sa != sb) return sa > sb;
      const int64_t ia = records[a * kCocoRecordSize + 1], ib = records[b * kCocoRecordSize + 1];
      if (ia != ib) return ia < ib;
      return records[a * kCocoRecordSize + 2] < records[b * kCocoRecordSize + 2];
    });
    const std::size_t nd = idx.size();
    for (int t = 0; t < kCocoThresholds; ++t) {
      std::vector<double> rc(nd), pr(nd);
      double tp = 0, fp = 0;
      for (std::size_t i = 0; i < nd; ++i) {
        const bool matched = (records[idx[i] * kCocoRecordSize + 4] >> t) & 1;
        (matched ? tp : fp) += 1;
        rc[i] = tp / static_cast<double>(npig);
        pr[i] = tp / (fp + tp + eps);
      }
      for (std::size_t i = nd; i-- > 1;) pr[i - 1] = std::max(pr[i - 1], pr[i]);
      double q = 0;
      for (int r = 0; r < kRecall; ++r) {
        const auto at = static_cast<std::size_t>(
            std::lower_bound(rc.begin(), rc.end(), recall_points[r]) - rc.begin());
        if (at >= nd) break;
        q += pr[at];
      }
      const double ap = q / kRecall;
      sum_all += ap;
      if (t == 0) sum_50 += ap;
    }
  }
  CocoAp out;
  out.classes = classes;
  if (classes > 0) {
    out.map = sum_all / (classes * kCocoThresholds);
    out.map50 = sum_50 / classes;
  }
  return out;
}

}  // namespace gemel::train
