#pragma once
// The edge box's scheduler, simulated (`gemel simulate`): camera streams, one model
// each, share a GPU (or CPU) memory budget. Torch-free and deterministic.
//
// Time is in seconds. Every stream delivers `frames` frames at `fps` (frame k arrives at k/fps).
// The scheduler visits the models round-robin. A turn:
//   1. frames waiting longer than the SLA are skipped;
//   2. with no frame waiting, the turn passes to the next model; when no stream has a frame
//      waiting, the clock jumps to the next arrival;
//   3. the model is made resident: its blocks that are not resident are loaded, paying their
//      load time, after evicting models (their blocks that this model does not use) until its
//      blocks and its run memory for the batch fit in the budget. The victim is the model whose
//      turn comes last in the round-robin order: the furthest next use, which is the optimal
//      choice for a cyclic schedule (least-recently-run would evict the next model every turn);
//   4. it runs one batch of the waiting frames (oldest first): `batch` frames, or with batch 0
//      (auto) the largest profiled batch size not above the frames waiting; the clock advances
//      by the profiled latency of that batch size.
// A frame counts as within the SLA when its batch ends no later than `sla` after it arrived.
// Blocks are what loading moves: a model's private weights are one block, and each weight
// tensor it shares is a block that every sharing model names by the same id, so it is loaded
// once (merged). Unmerged models share no block ids.
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::edge {

struct Block {
  std::string id;
  int64_t bytes = 0;
  double load_seconds = 0;
};

struct ModelProfile {
  std::string name;
  std::vector<Block> blocks;
  std::vector<int> batch_sizes;         // ascending, e.g. 1, 2, 4, 8
  std::vector<double> latency_seconds;  // per batch size: one batch's run time
  std::vector<int64_t> run_bytes;       // per batch size: memory the run needs besides weights
  int64_t residentBytes() const;
};

struct SimulationOptions {
  int64_t memory_bytes = 0;
  double fps = 30;
  double sla_seconds = 0.1;
  int64_t frames = 3000;   // per stream
  int batch = 0;           // 0: auto
  bool load_costs = true;  // false: the no-swap-cost mode (loads are free, still counted)
  // The box starts with models loaded, in stream order, while they fit beside the largest
  // smallest-batch run memory; these loads are free and not counted.
  bool preload = false;
};

struct StreamResult {
  std::string model;
  int64_t processed = 0, skipped = 0, within_sla = 0;
};

struct SimulationResult {
  std::vector<StreamResult> streams;
  int64_t loads = 0;        // models made resident by loading at least one block
  double load_seconds = 0;  // clock time spent loading
  double end_seconds = 0;   // when the last frame was processed or skipped
  int64_t processed() const;
  int64_t skipped() const;
};

// Throws UsageError when a model cannot run at all within the budget (its blocks and its
// smallest batch's run memory exceed it), naming the model and both sizes.
SimulationResult simulate(const std::vector<ModelProfile>& models,
                          const SimulationOptions& options);

// The same models with every block made private (the unmerged deployment).
std::vector<ModelProfile> unmerged(const std::vector<ModelProfile>& models);

}  // namespace gemel::edge
