#pragma once
// Placement: which ranks train which tasks. Tasks are spread over ranks by estimated cost
// (forward FLOPs per image x training images); with fewer ranks than tasks each task lives on
// one rank, assigned largest first to the least-loaded rank. With more ranks than tasks every
// rank holds one task replica: the extra ranks go, one at a time, to the task with the highest
// cost per replica, and a replicated task's dataset (train and val) is split between its
// replicas. Deterministic: every rank computes the same placement.
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::dist {

struct TaskCost {
  std::string name;
  double cost = 1;  // arbitrary units, comparable across tasks
};

struct Slot {
  int task = 0;
  int replica = 0;   // 0..replicas-1
  int replicas = 1;  // how many ranks hold the task
};

class Placement {
 public:
  Placement(const std::vector<TaskCost>& tasks, int world_size);
  int worldSize() const { return world_; }
  const std::vector<Slot>& slotsOf(int rank) const { return per_rank_[rank]; }
  const std::vector<int>& ranksOf(int task) const { return ranks_[task]; }
  int owner(int task) const { return ranks_[task].front(); }  // the replica that reports
  double load(int rank) const { return load_[rank]; }
  // One line per rank: "rank 0: taskA (1/2), taskB".
  std::string describe(const std::vector<TaskCost>& tasks) const;

 private:
  int world_;
  std::vector<std::vector<Slot>> per_rank_;
  std::vector<std::vector<int>> ranks_;
  std::vector<double> load_;
};

// A task's training cost for placement: forward FLOPs per image (the arch's 224x224 figure
// scaled by pixel count) x training images. A TorchScript model, of unknown FLOPs, is costed
// as a ResNet-50.
double estimateTaskCost(const std::string& arch, int64_t height, int64_t width,
                        int64_t train_images);

}  // namespace gemel::dist
