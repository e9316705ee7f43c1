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

// Reads a torch.save(state_dict) file. Throws InputError naming the file when it is missing,
// not a PyTorch zip archive, a TorchScript module, or holds anything but name -> tensor.
StateDict readStateDict(const std::string& path);

// Writes a file that Python's torch.load returns as a dict of tensors (for load_state_dict).
// Written to a temporary file beside `path` and renamed, so `path` is never half-written.
void writeStateDict(const std::string& path, const StateDict& state);

// True when the file is a TorchScript archive (torch.jit.save) rather than a state_dict.
bool isTorchScriptFile(const std::string& path);

}  // namespace gemel::models
