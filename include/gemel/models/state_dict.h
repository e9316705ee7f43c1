#pragma once
// state_dict files as Python writes them with torch.save(model.state_dict()) and reads them
// with torch.load: a zip archive holding a pickled (Ordered)dict of name -> tensor.
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace gemel::models {

// Ordered as in the file (or as the module registers them).
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// What a weights file holds: a state_dict (torch.save(model.state_dict())), or a whole pickled
// torchvision module (torch.save(model), as the original Gemel's model files hold them), read
// by module path without running Python.
struct WeightsFile {
  StateDict state;
  std::string module_class;  // the pickled module's class; "" for a state_dict
  std::string arch;          // the gemel arch of that module (resnet50, fasterrcnn:vgg16, ...)
};

// Reads a torch.save(state_dict) or torch.save(model) file. Throws InputError naming the file
// when it is missing, not a PyTorch zip archive, a TorchScript module, a module of a class
// gemel does not build (naming the class), or anything else but name -> tensor.
WeightsFile readWeightsFile(const std::string& path);
// A pickled module of another arch than `arch`: InputError naming the file, the class, both
// archs and what to do. Nothing for a state_dict.
void checkWeightsArch(const WeightsFile& file, const std::string& path, const std::string& arch);
// readWeightsFile(path).state.
StateDict readStateDict(const std::string& path);

// Writes a file that Python's torch.load returns as a dict of tensors (for load_state_dict).
// Written to a temporary file beside `path` and renamed, so `path` is never half-written.
void writeStateDict(const std::string& path, const StateDict& state);

// One task of a merged workload: its torchvision arch, the num_classes its torchvision
// constructor takes, and its full state_dict, whose shared tensors are the same tensors as in
// the other tasks that share them.
struct MergedTask {
  std::string name, arch;
  int num_classes = 0;
  StateDict state;
};

// One torch.save file for a whole merged workload: {"format": "gemel-merged-workload",
// "version": 1, "tasks": {name: {"arch", "num_classes", "state_dict"}}}, each storage stored
// once, so that torch.load gives the tasks' state_dicts their shared tensors back (docs/export.md
// loads them into torchvision models with their tied weights). Written atomically.
void writeMergedWorkload(const std::string& path, const std::vector<MergedTask>& tasks);

// True when the file is a TorchScript archive (torch.jit.save) rather than a state_dict.
bool isTorchScriptFile(const std::string& path);

}  // namespace gemel::models
