#pragma once
// Internal to dist: the communicator of a one-process run (every collective is the identity).
#include "gemel/dist/communicator.h"

namespace gemel::dist {

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void allreduceSum(torch::Tensor& tensor) override;
  void broadcast(torch::Tensor& tensor, int root) override;
};

}  // namespace gemel::dist
