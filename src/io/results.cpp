#include "gemel/io/results.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "data/hdf5.h"  // internal to data and io
#include "gemel/core/error.h"
#include "gemel/core/files.h"

namespace gemel::io {

// The end of every error about a results file that is not whole.
constexpr const char* kReadRemedy =
    "it is not a complete gemel results file: give the results.h5 that 'gemel merge' wrote, or "
    "run the merge again";
namespace {

hid_t h5Type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      return H5T_NATIVE_FLOAT;
    case torch::kDouble:
      return H5T_NATIVE_DOUBLE;
    case torch::kLong:
      return H5T_NATIVE_INT64;
    case torch::kInt:
      return H5T_NATIVE_INT32;
    case torch::kHalf:
      break;
    default:
      break;
  }
  throw InputError(format("results.h5 cannot store tensors of type {}",
                          std::string(c10::toString(t.scalar_type()))));
}

void writeTensor(h5::File& f, const std::string& name, const torch::Tensor& tensor) {
  const auto t = tensor.detach().to(torch::kCPU).contiguous();
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  auto ds = h5::Dataset::create(f, name, h5Type(t), dims, {}, false);
  ds.writeAll(h5Type(t), t.data_ptr());
}

torch::Tensor readTensor(const h5::File& f, const std::string& name) {
  const auto ds = h5::Dataset::open(f, name);
  const auto dims = ds.dims();
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  torch::ScalarType type;
  hid_t mem;
  if (ds.hasType(H5T_NATIVE_FLOAT)) {
    type = torch::kFloat, mem = H5T_NATIVE_FLOAT;
  } else if (ds.hasType(H5T_NATIVE_DOUBLE)) {
    type = torch::kDouble, mem = H5T_NATIVE_DOUBLE;
  } else if (ds.hasType(H5T_NATIVE_INT64)) {
    type = torch::kLong, mem = H5T_NATIVE_INT64;
  } else if (ds.hasType(H5T_NATIVE_INT32)) {
    type = torch::kInt, mem = H5T_NATIVE_INT32;
  } else {
    f.fail(name, "tensor of an unsupported element type");
  }
  auto t = torch::empty(sizes, torch::TensorOptions().dtype(type));
  if (t.numel() > 0) ds.readAll(mem, t.data_ptr());
  return t;
}

std::string trialName(int number) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d", number);
  return buf;
}

void writeTask(h5::File& f, const TaskRecord& t) {
  const auto g = "/tasks/" + t.name;
  f.createGroup(g);
  f.setAttr(g, "arch", t.arch);
  f.setAttr(g, "source", t.source);
  f.setAttr(g, "dataset", t.dataset);
  f.setAttr(g, "num_classes", static_cast<int64_t>(t.num_classes));
  f.setAttr(g, "metric", t.metric);
  f.setAttr(g, "kind", t.kind);
  f.setAttr(g, "image_size", static_cast<int64_t>(t.image_size));
  f.setAttr(g, "precision", t.precision);
  f.setAttr(g, "channels_last", static_cast<int64_t>(t.channels_last ? 1 : 0));
  f.setAttr(g, "unmerged_score", t.unmerged_score);
  f.setAttr(g, "target", t.target);
  f.setAttr(g, "final_score", t.final_score);
  f.setAttr(g, "mean", t.mean);
  f.setAttr(g, "std", t.std);
  f.createGroup(g + "/params");
  for (const auto& [name, tensor] : t.params) writeTensor(f, g + "/params/" + name, tensor);
}

void writeTrial(h5::File& f, const TrialRecord& t) {
  const auto g = "/search/trials/" + trialName(t.number);
  f.createGroup(g);
  f.setAttr(g, "number", static_cast<int64_t>(t.number));
  f.setAttr(g, "label", t.label);
  f.setAttr(g, "decision", t.decision);
  f.setAttr(g, "models", t.models);
  f.setAttr(g, "met", t.met);
  f.setAttr(g, "trained", t.trained);
  f.setAttr(g, "scores", t.scores);
  if (!t.ended.empty()) f.setAttr(g, "ended", t.ended);
  if (!t.dropped.empty()) f.setAttr(g, "dropped", t.dropped);
  if (!t.checked.empty()) {
    f.setAttr(g, "checked", t.checked);
    f.setAttr(g, "check_scores", t.check_scores);
  }
  f.setAttr(g, "bytes_saved", t.bytes_saved);
  f.setAttr(g, "steps", t.steps);
  f.setAttr(g, "seconds", t.seconds);
  if (t.backoffs > 0) f.setAttr(g, "backoffs", static_cast<int64_t>(t.backoffs));
  if (t.lr > 0) f.setAttr(g, "lr", t.lr);
  if (!t.ranks.empty()) f.setAttr(g, "ranks", t.ranks);
  if (t.started >= 0) f.setAttr(g, "started", t.started);
}

TaskRecord readTask(const h5::File& f, const std::string& name, bool v1, bool tensors) {
  const auto g = "/tasks/" + name;
  const auto& path = f.path();
  TaskRecord t;
  t.name = name;
  t.arch = f.attrString(g, "arch");
  t.source = f.attrString(g, "source");
  t.dataset = f.attrString(g, "dataset");
  t.num_classes = static_cast<int>(f.attrInt(g, "num_classes"));
  t.metric = v1 ? "top1" : f.attrString(g, "metric");
  if (f.hasAttr(g, "kind")) t.kind = f.attrString(g, "kind");
  GEMEL_THROW_IF_NOT(t.kind == "classification" || t.kind == "detection", InputError,
                     "{}: {} attribute kind is '{}', expected classification or detection; "
                     "the file was altered or written by a newer gemel",
                     path, g, t.kind);
  if (f.hasAttr(g, "image_size")) t.image_size = static_cast<int>(f.attrInt(g, "image_size"));
  if (f.hasAttr(g, "precision")) t.precision = f.attrString(g, "precision");
  GEMEL_THROW_IF_NOT(t.precision == "fp32" || t.precision == "bf16" || t.precision == "fp16",
                     InputError, "{}: {} attribute precision is '{}', expected fp32, bf16 or fp16",
                     path, g, t.precision);
  if (f.hasAttr(g, "channels_last")) t.channels_last = f.attrInt(g, "channels_last") != 0;
  t.unmerged_score = f.attrDouble(g, v1 ? "unmerged_acc" : "unmerged_score");
  t.target = f.attrDouble(g, "target");
  t.final_score = f.attrDouble(g, v1 ? "final_acc" : "final_score");
  t.mean = f.attrDoubles(g, "mean");
  t.std = f.attrDoubles(g, "std");
  for (const auto& p : tensors ? f.children(g + "/params") : std::vector<std::string>{})
    t.params.emplace_back(p, readTensor(f, g + "/params/" + p));
  return t;
}

TrialRecord readTrial(const h5::File& f, const std::string& n, bool v1) {
  const auto g = "/search/trials/" + n;
  const auto& path = f.path();
  TrialRecord t;
  t.number = static_cast<int>(f.attrInt(g, "number"));
  t.label = f.attrString(g, "label");
  t.decision = f.attrString(g, "decision");
  t.models = f.attrStrings(g, "models");
  t.met = f.attrStrings(g, "met");
  t.trained = f.attrStrings(g, "trained");
  t.scores = f.attrDoubles(g, v1 ? "accuracy" : "scores");
  if (f.hasAttr(g, "ended")) t.ended = f.attrString(g, "ended");
  if (f.hasAttr(g, "dropped")) t.dropped = f.attrStrings(g, "dropped");
  if (f.hasAttr(g, "checked")) {
    t.checked = f.attrStrings(g, "checked");
    t.check_scores = f.attrDoubles(g, "check_scores");
    GEMEL_THROW_IF_NOT(t.check_scores.size() == t.checked.size(), InputError,
                       "{}: {} has {} checked tasks but {} check_scores; the file was altered",
                       path, g, t.checked.size(), t.check_scores.size());
  }
  t.bytes_saved = f.attrInt(g, "bytes_saved");
  t.steps = f.attrInt(g, "steps");
  if (f.hasAttr(g, "backoffs")) t.backoffs = static_cast<int>(f.attrInt(g, "backoffs"));
  if (f.hasAttr(g, "lr")) t.lr = f.attrDouble(g, "lr");
  if (f.hasAttr(g, "ranks")) t.ranks = f.attrInts(g, "ranks");
  if (f.hasAttr(g, "started")) t.started = f.attrDouble(g, "started");
  t.seconds = f.attrDouble(g, "seconds");
  return t;
}

}  // namespace

void writeResults(const std::string& path, const Results& r) {
  const auto temp = tempPathFor(path);
  TempFileGuard guard(temp);
  {
    auto f = h5::File::create(temp, path);
    f.setAttr("/", "format", std::string(kResultsFormat));
    f.setAttr("/", "version", kResultsVersion);
    f.setAttr("/", "workload", r.workload_yaml);
    f.setAttr("/", "workload_path", r.workload_path);
    f.setAttr("/", "status", r.status);
    if (!r.ended.empty()) f.setAttr("/", "ended", r.ended);
    f.setAttr("/", "search_seconds", r.search_seconds);
    f.createGroup("/tasks");
    std::vector<std::string> order;
    for (const auto& t : r.tasks) order.push_back(t.name);
    f.setAttr("/tasks", "order", order);  // the workload's order (HDF5 lists names sorted)
    for (const auto& t : r.tasks) writeTask(f, t);
    f.createGroup("/shared");
    for (const auto& s : r.shared) {
      const auto g = "/shared/" + s.id;
      f.createGroup(g);
      f.setAttr(g, "signature", s.signature);
      f.setAttr(g, "members", s.members);
      for (const auto& [name, tensor] : s.tensors) writeTensor(f, g + "/" + name, tensor);
    }
    f.createGroup("/search");
    f.createGroup("/search/trials");
    if (!r.rank_busy_seconds.empty()) {
      f.setAttr("/search", "rank_busy_seconds", r.rank_busy_seconds);
      f.setAttr("/search", "rank_idle_seconds", r.rank_idle_seconds);
    }
    for (const auto& t : r.trials) writeTrial(f, t);
    f.createGroup("/search/state");
    f.setAttr("/search/state", "plan", r.plan_json);
    if (!r.streams.empty()) {
      auto streams = torch::empty({static_cast<int64_t>(r.streams.size()), 2}, torch::kLong);
      for (std::size_t i = 0; i < r.streams.size(); ++i) {
        streams[i][0] = r.streams[i].first;
        streams[i][1] = r.streams[i].second;
      }
      writeTensor(f, "/search/state/streams", streams);
    }
    f.createGroup("/memory");
    f.setAttr("/memory", "total", r.total_bytes);
    f.setAttr("/memory", "possible_savings", r.possible_savings);
    f.setAttr("/memory", "achieved_savings", r.achieved_savings);
    std::vector<double> timeline;
    for (const auto& [s, b] : r.timeline) {
      timeline.push_back(s);
      timeline.push_back(static_cast<double>(b));
    }
    auto ds = h5::Dataset::create(f, "/memory/timeline", H5T_NATIVE_DOUBLE,
                                  {static_cast<hsize_t>(r.timeline.size()), 2}, {}, false);
    if (!timeline.empty()) ds.writeAll(H5T_NATIVE_DOUBLE, timeline.data());
    f.close();
  }
  commitTempFile(temp, path);
  guard.release();
}

Results readResults(const std::string& path, bool tensors) {
  if (std::filesystem::is_directory(path)) {
    const auto inside = (std::filesystem::path(path) / "results.h5").string();
    throw InputError(
        format("{}: a directory, not a results file; give the results.h5 that 'gemel "
               "merge' wrote{}",
               path, std::filesystem::exists(inside) ? " (" + inside + ")" : ""));
  }
  auto f = h5::File::open(path, false, kReadRemedy);
  const bool ours = f.hasAttr("/", "format") && f.attrString("/", "format") == kResultsFormat;
  GEMEL_THROW_IF_NOT(ours, InputError,
                     "{}: not a gemel results file (no format=\"{}\" attribute); give the "
                     "results.h5 that 'gemel merge' wrote",
                     path, kResultsFormat);
  const auto version = f.attrInt("/", "version");
  GEMEL_THROW_IF_NOT(version == 1 || version == kResultsVersion, InputError,
                     "{}: results format version {}; this gemel reads versions 1 to {}: update "
                     "gemel, or read it with the gemel that wrote it",
                     path, version, kResultsVersion);
  const bool v1 = version == 1;  // scores were called accuracies, and were always top-1
  Results r;
  r.workload_yaml = f.attrString("/", "workload");
  r.workload_path = f.attrString("/", "workload_path");
  r.status = f.attrString("/", "status");
  if (f.hasAttr("/", "ended")) r.ended = f.attrString("/", "ended");
  if (f.hasAttr("/", "search_seconds")) r.search_seconds = f.attrDouble("/", "search_seconds");
  const auto names =
      f.hasAttr("/tasks", "order") ? f.attrStrings("/tasks", "order") : f.children("/tasks");
  for (const auto& name : names) r.tasks.push_back(readTask(f, name, v1, tensors));
  for (const auto& id : f.children("/shared")) {
    const auto g = "/shared/" + id;
    SharedRecord s;
    s.id = id;
    s.signature = f.attrString(g, "signature");
    s.members = f.attrStrings(g, "members");
    for (const auto& p : tensors ? f.children(g) : std::vector<std::string>{})
      s.tensors.emplace_back(p, readTensor(f, g + "/" + p));
    r.shared.push_back(std::move(s));
  }
  for (const auto& n : f.children("/search/trials")) r.trials.push_back(readTrial(f, n, v1));
  if (f.hasAttr("/search", "rank_busy_seconds")) {
    r.rank_busy_seconds = f.attrDoubles("/search", "rank_busy_seconds");
    r.rank_idle_seconds = f.attrDoubles("/search", "rank_idle_seconds");
  }
  r.plan_json = f.attrString("/search/state", "plan");
  if (f.exists("/search/state/streams")) {
    const auto streams = readTensor(f, "/search/state/streams");
    const bool fits = streams.dim() == 2 && streams.size(0) == int64_t(r.tasks.size()) &&
                      streams.size(1) == 2 && streams.scalar_type() == torch::kLong;
    if (!fits) f.fail("/search/state/streams", "expected int64 [tasks, 2]");
    for (int64_t i = 0; i < streams.size(0); ++i)
      r.streams.emplace_back(streams[i][0].item<int64_t>(), streams[i][1].item<int64_t>());
  }
  if (f.exists("/memory/timeline")) {
    const auto timeline = readTensor(f, "/memory/timeline").to(torch::kDouble);
    if (timeline.dim() != 2 || (timeline.numel() > 0 && timeline.size(1) != 2))
      f.fail("/memory/timeline", "expected [T, 2]");
    for (int64_t i = 0; i < timeline.size(0); ++i)
      r.timeline.emplace_back(timeline[i][0].item<double>(),
                              static_cast<int64_t>(timeline[i][1].item<double>()));
  }
  r.total_bytes = f.attrInt("/memory", "total");
  r.possible_savings = f.attrInt("/memory", "possible_savings");
  r.achieved_savings = f.attrInt("/memory", "achieved_savings");
  return r;
}

models::StateDict fullStateDict(const Results& r, const std::string& task) {
  for (const auto& t : r.tasks) {
    if (t.name != task) continue;
    models::StateDict out = t.params;
    const auto prefix = task + ":";
    for (const auto& s : r.shared) {
      for (const auto& m : s.members) {
        if (m.rfind(prefix, 0) != 0) continue;
        const auto module = m.substr(prefix.size());
        for (const auto& [leaf, tensor] : s.tensors) out.emplace_back(module + "." + leaf, tensor);
      }
    }
    return out;
  }
  throw UsageError(format("no task '{}' in the results", task));
}

std::vector<WeightBlock> weightBlocks(const Results& r) {
  auto bytesOf = [](const models::StateDict& state) {
    int64_t n = 0;
    for (const auto& [name, t] : state) n += t.numel() * static_cast<int64_t>(t.element_size());
    return n;
  };
  std::vector<WeightBlock> out;
  for (const auto& t : r.tasks) {
    WeightBlock b{"private:" + t.name, {t.name}, {}, bytesOf(t.params)};
    for (const auto& [name, tensor] : t.params)
      b.objects.push_back("/tasks/" + t.name + "/params/" + name);
    out.push_back(std::move(b));
  }
  for (const auto& s : r.shared) {
    WeightBlock b{s.id, {}, {}, bytesOf(s.tensors)};
    for (const auto& t : r.tasks) {
      for (const auto& m : s.members) {
        if (m.rfind(t.name + ":", 0) == 0) {
          b.tasks.push_back(t.name);
          break;
        }
      }
    }
    for (const auto& [name, tensor] : s.tensors)
      b.objects.push_back("/shared/" + s.id + "/" + name);
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<torch::Tensor> readResultTensors(const std::string& path,
                                             const std::vector<std::string>& objects) {
  const auto f = h5::File::open(path, false, kReadRemedy);
  std::vector<torch::Tensor> out;
  out.reserve(objects.size());
  for (const auto& o : objects) out.push_back(readTensor(f, o));
  return out;
}

}  // namespace gemel::io
