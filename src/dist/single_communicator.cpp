#include "single_communicator.h"

#include "gemel/core/error.h"

namespace gemel::dist {

void SingleCommunicator::allreduceSum(torch::Tensor&) {}

void SingleCommunicator::broadcast(torch::Tensor&, int root) {
  GEMEL_ASSERT(root == 0, "broadcast from rank {} in a communicator of one", root);
}

}  // namespace gemel::dist
