#include "gemel/models/state_dict.h"

#include <torch/serialize.h>

#include <filesystem>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/models/torch_compat.h"
#include "pickle_reader.h"

namespace gemel::models {
namespace {

std::unique_ptr<caffe2::serialize::PyTorchStreamReader> open(const std::string& path) {
  GEMEL_THROW_IF_NOT(std::filesystem::exists(path), InputError,
                     "{}: weights file does not exist; check the path", path);
  GEMEL_THROW_IF_NOT(!std::filesystem::is_directory(path), InputError,
                     "{}: is a directory; expected a weights file written by torch.save", path);
  try {
    return compat::openArchive(path);
  } catch (const c10::Error&) {
    throw InputError(format(
        "{}: not a PyTorch zip archive (it may be truncated, corrupt, or saved with the legacy "
        "format); re-save it in Python with torch.save(model.state_dict(), path)", path));
  }
}

bool isScriptArchive(caffe2::serialize::PyTorchStreamReader& reader) {
  if (reader.hasRecord("constants.pkl")) return true;
  for (const auto& name : compat::recordNames(reader)) {
    if (name.rfind("code/", 0) == 0) return true;
  }
  return false;
}

const char* kindName(pickle::Value::Kind kind) {
  using K = pickle::Value::Kind;
  switch (kind) {
    case K::kNone: return "None";
    case K::kBool: return "a bool";
    case K::kInt: return "an int";
    case K::kFloat: return "a float";
    case K::kString: return "a string";
    case K::kBytes: return "bytes";
    case K::kTuple: return "a tuple";
    case K::kList: return "a list";
    case K::kDict: return "a dict";
    case K::kGlobal: return "a class";
    case K::kStorage: return "a storage";
    case K::kTensor: return "a tensor";
    case K::kObject: return "an object";
  }
  return "a value";
}

}  // namespace

bool isTorchScriptFile(const std::string& path) {
  auto reader = open(path);
  return isScriptArchive(*reader);
}

StateDict readStateDict(const std::string& path) {
  auto reader = open(path);
  GEMEL_THROW_IF_NOT(!isScriptArchive(*reader), InputError,
                     "{}: is a TorchScript module, not a state_dict; use it with arch: torchscript, "
                     "or save the weights with torch.save(model.state_dict(), path)", path);
  GEMEL_THROW_IF_NOT(reader->hasRecord("data.pkl"), InputError,
                     "{}: holds no data.pkl record; expected a file written by torch.save", path);
  std::vector<char> pkl;
  try {
    auto [ptr, size] = reader->getRecord("data.pkl");
    const auto* bytes = static_cast<const char*>(ptr.get());
    pkl.assign(bytes, bytes + size);
  } catch (const c10::Error&) {
    throw InputError(format("{}: data.pkl cannot be read (corrupt archive); re-save the file", path));
  }

  const pickle::StorageLoader loader = [&](const std::string& key, torch::ScalarType dtype,
                                           int64_t numel) {
    const auto record = "data/" + key;
    GEMEL_THROW_IF_NOT(reader->hasRecord(record), InputError,
                       "{}: tensor data '{}' is missing from the archive (truncated file?)", path, record);
    try {
      auto [ptr, size] = reader->getRecord(record);
      const auto need = static_cast<size_t>(numel) * torch::elementSize(dtype);
      GEMEL_THROW_IF_NOT(size >= need, InputError,
                         "{}: tensor data '{}' holds {} bytes, {} expected (truncated file?)", path,
                         record, size, need);
      return torch::from_blob(ptr.get(), {numel}, torch::TensorOptions().dtype(dtype)).clone();
    } catch (const c10::Error&) {
      throw InputError(format("{}: tensor data '{}' cannot be read (corrupt archive)", path, record));
    }
  };
  const auto root = pickle::unpickle(pkl, loader, path);

  using K = pickle::Value::Kind;
  GEMEL_THROW_IF_NOT(root->kind == K::kDict, InputError,
                     "{}: holds {}, not a state_dict; save model.state_dict() with torch.save", path,
                     kindName(root->kind));
  StateDict out;
  for (const auto& [key, value] : root->dict) {
    GEMEL_THROW_IF_NOT(key->kind == K::kString, InputError,
                       "{}: a state_dict key is {}, not a string", path, kindName(key->kind));
    if (value->kind == K::kDict) {
      throw InputError(format("{}: key '{}' holds a nested dict: this looks like a training "
                              "checkpoint; save checkpoint['{}'] (the model's state_dict) on its own",
                              path, key->s, key->s));
    }
    GEMEL_THROW_IF_NOT(value->kind == K::kTensor, InputError,
                       "{}: key '{}' holds {}, not a tensor; expected a state_dict of tensors", path,
                       key->s, kindName(value->kind));
    out.emplace_back(key->s, value->tensor);
  }
  return out;
}

void writeStateDict(const std::string& path, const StateDict& state) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : state) {
    dict.insert(name, tensor.detach().to(torch::kCPU).contiguous().clone());
  }
  const auto bytes = torch::pickle_save(dict);
  writeFileAtomic(path, bytes.data(), bytes.size());
}

}  // namespace gemel::models
