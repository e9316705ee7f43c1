#pragma once
// A task at training time: its model on the device, its dataset, an endless stream of training
// batches (this rank's shard), validation, and the accuracy it must keep.
#include <cstdint>
#include <memory>
#include <string>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"
#include "gemel/models/model.h"
#include "gemel/train/objective.h"
#include "gemel/train/precision.h"
#include "gemel/train/step.h"

namespace gemel::train {

// Which replica of a task this rank holds (a task on several ranks splits its data).
// Where a task is validated: its val split, or the part of its train split held out from
// training (gemel train chooses its epoch there, so that the val split, which sets the
// merge's target, played no part in choosing the weights).
enum class EvalSplit { kVal, kHeldOut };

struct Replica {
  int rank = 0;        // this replica's shard of the task's data
  int world_size = 1;  // how many replicas hold the task (each takes 1/world_size of a batch)
};

class TaskRuntime final : public Trainable {
 public:
  // Builds the model (with its weights, if any) on `device` and opens the dataset; throws
  // ConfigError when the dataset does not fit the task (kind, classes).
  TaskRuntime(const config::TaskConfig& task, int index, const torch::Device& device, uint64_t seed,
              Replica replica = {});
  ~TaskRuntime();

  const config::TaskConfig& config() const { return config_; }
  int index() const { return index_; }  // position in the workload
  const std::string& name() const { return config_.name; }
  models::Model& model() { return *model_; }
  const models::Model& model() const { return *model_; }
  const data::DatasetReader& dataset() const { return *data_; }
  const torch::Device& device() const { return device_; }

  // Training batches from this rank's shard, epoch after epoch (reshuffled each epoch).
  data::Batch nextTrainBatch() override;
  // On CUDA: takes the next training batch now and starts copying it to the device on a side
  // stream, so that the copy runs while the step in flight computes; nextTrainBatch() then
  // hands it over (the compute stream waits for the copy). Elsewhere a no-op: the loader's
  // thread already holds the batch ready in memory.
  void stageNextBatch() override;
  int64_t batchesPerEpoch() const;
  // How far the training stream has gone: batches taken and loss steps computed. A resumed
  // merge puts them back with resumeStream, so it draws the batches and random numbers an
  // uninterrupted run would have.
  int64_t batchesTaken() const { return batches_; }
  int64_t stepsTaken() const { return step_; }
  void resumeStream(int64_t batches, int64_t steps);
  // The task kind's loss and metric.
  const Objective& objective() const { return *objective_; }
  // How the forward pass runs: autocast precision, and conv weights and inputs channels_last.
  Precision precision() const { return precision_; }
  bool channelsLast() const { return channels_last_; }
  // The objective's loss on an augmented training batch (model in train mode). The random
  // draws (augmentation; dropout, in models that have it) are keyed by (seed, task, step), so
  // they do not depend on which other tasks share this process, nor on a resume.
  torch::Tensor trainLoss(const data::Batch& batch);
  // trainLoss in two halves: the augmented input of a training batch (the step's draws; the
  // batch gets what the loss needs), and the loss of the model on such an input. A CUDA graph
  // captures the second half on static copies of the first half's tensors.
  torch::Tensor trainInput(data::Batch& batch) override;
  torch::Tensor trainLossOn(const torch::Tensor& input, const data::Batch& prepared) override;
  // The objective's metric state over this rank's shard of the val split (model in eval mode,
  // no grad), to be gathered over ranks and replicas before Objective::score.
  MetricState validate(EvalSplit split = EvalSplit::kVal);
  // From now on trains on all but every `every`-th example of its train split, which
  // validate(EvalSplit::kHeldOut) then scores. Call before training.
  void holdOut(int every);
  int64_t heldOutSize() const;
  int64_t valSize() const;  // images in the val split (all ranks')
  // validate() scored, for one process that holds the whole val split.
  double score() { return objective_->score(validate()); }

 private:
  config::TaskConfig config_;
  int index_;
  torch::Device device_;
  Replica replica_;
  std::shared_ptr<const Objective> objective_;
  std::unique_ptr<models::Model> model_;
  std::shared_ptr<const data::DatasetReader> data_;
  std::unique_ptr<data::ShardedLoader> train_;
  std::unique_ptr<data::ShardedLoader> val_;  // made at the first validation, then reused
  std::unique_ptr<data::ShardedLoader> held_out_;
  data::LoaderOptions train_options_;
  uint64_t seed_ = 0;
  Precision precision_ = Precision::kFp32;
  bool channels_last_ = false;
  bool has_dropout_ = false;
  models::ModelOutput run(const torch::Tensor& x,
                          const std::vector<models::BoxTargets>* targets = nullptr);
  data::Batch takeBatch();
  struct Staged;                    // CUDA: a batch on its way to the device
  std::unique_ptr<Staged> staged_;  // (counted in batches_ once handed over)
  int64_t epoch_ = 0;
  int64_t step_ = 0;
  int64_t batches_ = 0;  // taken from the stream, over all epochs
  bool epoch_open_ = false;
};

// The device for training: CUDA (the local rank's GPU) when present, else the CPU.
torch::Device defaultDevice(int local_rank = 0);

}  // namespace gemel::train
