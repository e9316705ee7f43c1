#include "gemel/dist/placement.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/models/archs.h"

namespace gemel::dist {

Placement::Placement(const std::vector<TaskCost>& tasks, int world_size)
    : world_(world_size), per_rank_(world_size), ranks_(tasks.size()), load_(world_size, 0.0) {
  GEMEL_THROW_IF_NOT(world_size >= 1 && !tasks.empty(), UsageError,
                     "placement needs at least one rank and one task");
  const int n = static_cast<int>(tasks.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Largest first; ties by task index, so every rank sorts the same way.
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return tasks[a].cost > tasks[b].cost; });
  if (world_size <= n) {
    for (const int t : order) {
      const int r = static_cast<int>(std::min_element(load_.begin(), load_.end()) - load_.begin());
      per_rank_[r].push_back({t, 0, 1});
      ranks_[t].push_back(r);
      load_[r] += tasks[t].cost;
    }
    for (auto& slots : per_rank_) {
      std::sort(slots.begin(), slots.end(),
                [](const Slot& a, const Slot& b) { return a.task < b.task; });
    }
    return;
  }
  std::vector<int> replicas(n, 1);
  for (int extra = world_size - n; extra > 0; --extra) {
    int best = order[0];
    for (const int t : order) {
      if (tasks[t].cost / replicas[t] > tasks[best].cost / replicas[best]) best = t;
    }
    ++replicas[best];
  }
  int rank = 0;
  for (int t = 0; t < n; ++t) {
    for (int k = 0; k < replicas[t]; ++k, ++rank) {
      per_rank_[rank].push_back({t, k, replicas[t]});
      ranks_[t].push_back(rank);
      load_[rank] = tasks[t].cost / replicas[t];
    }
  }
}

std::string Placement::describe(const std::vector<TaskCost>& tasks) const {
  std::ostringstream out;
  for (int r = 0; r < world_; ++r) {
    out << "rank " << r << ":";
    for (const auto& s : per_rank_[r]) {
      out << " " << tasks[s.task].name;
      if (s.replicas > 1) out << " (replica " << s.replica + 1 << "/" << s.replicas << ")";
    }
    out << "  [load " << static_cast<int64_t>(load_[r]) << "]";
    if (r + 1 < world_) out << "\n";
  }
  return out.str();
}

double estimateTaskCost(const std::string& arch, int64_t height, int64_t width,
                        int64_t train_images) {
  const double gflops = models::forwardGflops224(arch);
  const double pixels = double(height) * double(width) / (224.0 * 224.0);
  const double per_image = (gflops > 0 ? gflops : models::forwardGflops224("resnet50")) * pixels;
  return std::max(1e-6, per_image) * double(std::max<int64_t>(1, train_images));
}

}  // namespace gemel::dist
