#include "gemel/train/task.h"
#include "gemel/features.h"

#include <torch/torch.h>

#include <optional>

#ifdef GEMEL_HAVE_CUDA_RUNTIME
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/data/transforms.h"
#include "gemel/models/archs.h"
#include "gemel/models/zoo.h"

namespace gemel::train {

TaskRuntime::TaskRuntime(const config::TaskConfig& task, int index, const torch::Device& device,
                         uint64_t seed, Replica replica)
    : config_(task), index_(index), device_(device), replica_(replica) {
  objective_ = makeObjective(task);
  data_ = std::make_shared<const data::DatasetReader>(task.dataset);
  const auto& info = data_->info();
  const bool detection = task.kind == config::TaskKind::kDetection;
  GEMEL_THROW_IF_NOT(
      (info.kind == data::DatasetKind::kDetection) == detection, ConfigError,
      "task '{}': dataset {} holds {} data, but the task is a {} task; give the task a {} "
      "dataset",
      task.name, task.dataset, data::toString(info.kind), config::toString(task.kind),
      config::toString(task.kind));
  GEMEL_THROW_IF_NOT(static_cast<int>(info.classes.size()) == task.num_classes, ConfigError,
                     "task '{}': num_classes is {} but dataset {} has {} classes; make them agree",
                     task.name, task.num_classes, task.dataset, info.classes.size());
  // A classifier takes its dataset's images as they are: an image_size the workload gives must
  // be theirs (a silently ignored size would mislead about what the model sees).
  GEMEL_THROW_IF_NOT(
      detection || !task.image_size_set ||
          (info.height == task.image_size && info.width == task.image_size),
      ConfigError,
      "task '{}': image_size is {} but its dataset {} holds {}x{} images, which a classifier "
      "takes as they are; set image_size: {} (or leave it out), or convert the dataset at {} px",
      task.name, task.image_size, task.dataset, info.height, info.width, info.height,
      task.image_size);
  GEMEL_THROW_IF_NOT(data_->hasSplit("val") && data_->size("val") > 0, InputError,
                     "{}: no val images; validation needs them: rebuild it with gemel-data with a "
                     "val split",
                     task.dataset);
  seed_ = seed;
  // A model without weights starts from its own seed, wherever it is placed.
  torch::manual_seed(seed * 1000003u + static_cast<uint64_t>(index));
  model_ = models::buildTaskModel(task);
  model_->to(device);
  has_dropout_ = model_->hasDropout();
  precision_ = resolveTaskPrecision(task.precision, device, task.arch);
  channels_last_ = resolveChannelsLast(task.channels_last, precision_);
  log::debug("train", "task '{}': forward in {}{} on {}", task.name, toString(precision_),
             channels_last_ ? ", channels_last" : "", device.str());
  if (channels_last_) {
    // In place: the module keeps its parameters; merging ties these tensors later.
    for (auto& [name, p] : model_->namedParameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  data::LoaderOptions o;
  o.split = "train";
  o.batch_size = (task.batch_size + replica.world_size - 1) / replica.world_size;
  o.rank = replica.rank;
  o.world_size = replica.world_size;
  o.seed = seed + static_cast<uint64_t>(index) * 1000003u;
  o.drop_last = data_->size("train") / replica.world_size >= o.batch_size;
  train_options_ = o;
  train_ = std::make_unique<data::ShardedLoader>(data_, o);
}

void TaskRuntime::holdOut(int every) {
  GEMEL_ASSERT(every >= 2 && batches_ == 0, "hold out every {}-th example, before training", every);
  auto o = train_options_;
  o.holdout_every = every;
  train_ = std::make_unique<data::ShardedLoader>(data_, o);
  GEMEL_THROW_IF_NOT(train_->shardSize() > 0, InputError,
                     "task '{}': its train split is too small to hold out every {}-th example",
                     config_.name, every);
  o.held_out = true;
  o.shuffle = false;
  o.drop_last = false;
  o.batch_size = std::max(64, config_.batch_size * 4);
  held_out_ = std::make_unique<data::ShardedLoader>(data_, o);
}

int64_t TaskRuntime::valSize() const { return data_->size("val"); }
int64_t TaskRuntime::heldOutSize() const { return held_out_ ? held_out_->shardSize() : 0; }

// A staged batch: its tensors already on the device (copied on `stream`), and the event the
// compute stream waits for before it uses them.
struct TaskRuntime::Staged {
  data::Batch batch;
#ifdef GEMEL_HAVE_CUDA_RUNTIME
  std::optional<at::cuda::CUDAEvent> copied;
#endif
};

TaskRuntime::~TaskRuntime() = default;

data::Batch TaskRuntime::takeBatch() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!epoch_open_) {
      train_->startEpoch(epoch_++);
      epoch_open_ = true;
    }
    if (auto batch = train_->next()) return std::move(*batch);
    epoch_open_ = false;
  }
  throw InputError(format("{}: this rank's shard of the train split is empty", config_.dataset));
}

data::Batch TaskRuntime::nextTrainBatch() {
  if (!staged_) {
    auto batch = takeBatch();
    ++batches_;  // counted once handed over (takeBatch throws on an empty shard)
    return batch;
  }
  ++batches_;
  auto staged = std::move(staged_);
#ifdef GEMEL_HAVE_CUDA_RUNTIME
  if (staged->copied) {
    const auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
    staged->copied->block(compute);
    // The copies were allocated on the side stream: their memory must not be reused before
    // the compute stream is done with it.
    for (auto* t : {&staged->batch.images, &staged->batch.labels}) {
      if (t->defined() && t->is_cuda()) t->record_stream(compute);
    }
  }
#endif
  return std::move(staged->batch);
}

void TaskRuntime::stageNextBatch() {
#ifdef GEMEL_HAVE_CUDA_RUNTIME
  if (staged_ || !device_.is_cuda()) return;
  auto staged = std::make_unique<Staged>();
  staged->batch = takeBatch();
  {
    const c10::cuda::CUDAStreamGuard on_side(c10::cuda::getStreamFromPool(false, device_.index()));
    auto& b = staged->batch;
    b.images = b.images.to(device_, /*non_blocking=*/true);  // pinned: an async copy
    if (b.labels.defined()) b.labels = b.labels.to(device_, /*non_blocking=*/true);
    staged->copied.emplace();
    staged->copied->record(c10::cuda::getCurrentCUDAStream(device_.index()));
  }
  staged_ = std::move(staged);
#endif
}

void TaskRuntime::resumeStream(int64_t batches, int64_t steps) {
  GEMEL_ASSERT(batches >= 0 && steps >= 0, "negative stream position");
  // Epochs are whole batchesPerEpoch() long (each ends when its batches run out), so the
  // position splits into finished epochs and batches into the open one.
  const int64_t per_epoch = train_->batchesPerEpoch();
  batches_ = batches;
  step_ = steps;
  staged_.reset();  // the stream goes on from `batches`: a batch taken ahead is read again
  epoch_ = per_epoch > 0 ? batches / per_epoch : 0;
  const int64_t into_epoch = per_epoch > 0 ? batches % per_epoch : 0;
  epoch_open_ = into_epoch > 0;
  if (epoch_open_) train_->startEpoch(epoch_++, into_epoch);
}

int64_t TaskRuntime::batchesPerEpoch() const {
  return std::max<int64_t>(1, train_->batchesPerEpoch());
}

torch::Tensor TaskRuntime::trainLoss(const data::Batch& batch) {
  data::Batch prepared = batch;
  const auto x = trainInput(prepared);
  return trainLossOn(x, prepared);
}

torch::Tensor TaskRuntime::trainInput(data::Batch& batch) {
  const int64_t step = step_++;
  auto draws = data::Draws::forStep(seed_, index_, step);
  // Dropout draws from the device's default generator: seeded from the same key, and only in
  // models that have dropout (none of the ResNets or YOLOs).
  if (has_dropout_) {
    auto gen = at::globalContext().defaultGenerator(device_);
    const std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(data::Draws::forStep(seed_, index_, step).next());
  }
  const auto x = objective_->prepare(batch, &draws, device_);
  return channels_last_ ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

torch::Tensor TaskRuntime::trainLossOn(const torch::Tensor& input, const data::Batch& prepared) {
  model_->train(true);
  return objective_->loss(run(input, model_->takesTargets() ? &prepared.box_targets : nullptr),
                          prepared);
}

// The forward pass in the task's precision and memory format; the outputs come back as fp32,
// so losses and metrics are computed in fp32.
models::ModelOutput TaskRuntime::run(const torch::Tensor& x,
                                     const std::vector<models::BoxTargets>* targets) {
  models::ModelOutput out;
  {
    AutocastScope autocast(device_, precision_);
    out = model_->forward(channels_last_ ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x,
                          targets);
  }
  const auto fp32 = [](torch::Tensor& t) {
    if (t.defined() && t.is_floating_point() && t.scalar_type() != torch::kFloat)
      t = t.to(torch::kFloat);
  };
  fp32(out.logits);
  for (auto& [name, loss] : out.losses) fp32(loss);
  return out;
}

MetricState TaskRuntime::validate(EvalSplit split) {
  GEMEL_ASSERT(split == EvalSplit::kVal || held_out_, "task {}: nothing held out", config_.name);
  // One loader for every validation: its shard is read (and cached) once.
  if (split == EvalSplit::kVal && !val_) {
    data::LoaderOptions o;
    o.split = "val";
    o.batch_size = std::max(64, config_.batch_size * 4);
    o.shuffle = false;
    o.rank = replica_.rank;
    o.world_size = replica_.world_size;
    val_ = std::make_unique<data::ShardedLoader>(data_, o);
  }
  auto& loader = split == EvalSplit::kVal ? *val_ : *held_out_;
  loader.startEpoch(0);
  model_->train(false);
  torch::NoGradGuard no_grad;
  auto state = objective_->emptyState();
  while (auto batch = loader.next()) {
    const auto x = objective_->prepare(*batch, nullptr, device_);
    objective_->accumulate(run(x), *batch, state);
    state.images += static_cast<int64_t>(batch->indices.size());
  }
  return state;
}

torch::Device defaultDevice(int local_rank) {
  if (torch::cuda::is_available()) {
    const int n = static_cast<int>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % std::max(1, n)));
  }
  return torch::Device(torch::kCPU);
}

}  // namespace gemel::train
