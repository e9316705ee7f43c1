#include "gemel/train/objective.h"

#include <torch/torch.h>

#include "gemel/core/error.h"

namespace gemel::train {
namespace {

// Cross-entropy; top-1 accuracy from {correct, total}.
class Classification final : public Objective {
 public:
  std::string metric() const override { return "top1"; }
  torch::Tensor loss(const models::ModelOutput& out, const data::Batch& batch) const override {
    return torch::nn::functional::cross_entropy(out.logits, batch.labels.to(out.logits.device()));
  }
  int stateSize() const override { return 2; }
  void accumulate(const models::ModelOutput& out, const data::Batch& batch,
                  int64_t* state) const override {
    const auto predicted = out.logits.argmax(1).cpu();
    state[0] += predicted.eq(batch.labels).sum().item<int64_t>();
    state[1] += batch.labels.size(0);
  }
  double score(const int64_t* state) const override {
    return state[1] > 0 ? double(state[0]) / double(state[1]) : 0.0;
  }
};

}  // namespace

std::shared_ptr<const Objective> makeObjective(config::TaskKind kind) {
  switch (kind) {
    case config::TaskKind::kClassification: {
      static const auto classification = std::make_shared<const Classification>();
      return classification;
    }
    case config::TaskKind::kDetection:
      break;
  }
  throw ConfigError("detection tasks can be converted and loaded, but not yet trained or merged");
}

}  // namespace gemel::train
