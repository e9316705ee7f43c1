#pragma once
// A strict reader for the pickles inside torch.save archives (data.pkl). LibTorch's own
// torch::pickle_load cannot read a state_dict saved from Python (it trips on the OrderedDict's
// _metadata attribute), so we run the subset of the pickle machine that torch.save emits for a
// state_dict or a whole nn.Module: containers, scalars, the tensor rebuild functions, persistent
// storage ids, and objects (NEWOBJ / REDUCE of a class, then BUILD with the object's __dict__).
// Nothing is imported or called: an object is its class name, its arguments and its state.
// Anything else is an error naming the opcode and offset, never a guess.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace gemel::models::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor,
    kObject
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                // string, bytes, global "module.name", object type
  std::vector<ValuePtr> items;  // tuple, list, object args
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;  // ordered
  torch::Tensor tensor;                             // storage (1-D) or tensor
  ValuePtr state;  // an object's BUILD state (a module's __dict__); null when none

  // The dict entry under a string key, or null (for a dict; null for anything else).
  ValuePtr get(const std::string& key) const;
};

// Loads the storage with the given key and dtype holding `numel` elements.
using StorageLoader =
    std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

// The typed storage classes of torch.save ("FloatStorage", ...), both ways. The reader also
// accepts "UntypedStorage" (bytes); the writer emits the typed name, as torch.save does.
// storageDtype returns false for a name it does not know; storageTypeName throws InputError for
// a dtype that has no storage class.
bool storageDtype(const std::string& name, torch::ScalarType& dtype);
std::string storageTypeName(torch::ScalarType dtype);

// Runs the pickle in `data`; throws InputError mentioning `source` on anything unsupported.
ValuePtr unpickle(const std::vector<char>& data, const StorageLoader& load_storage,
                  const std::string& source);

}  // namespace gemel::models::pickle
