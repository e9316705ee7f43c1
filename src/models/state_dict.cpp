#include "gemel/models/state_dict.h"

#include <exception>

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "pickle_reader.h"
#include "pickled_module.h"

namespace gemel::models {
namespace {

std::unique_ptr<caffe2::serialize::PyTorchStreamReader> open(const std::string& path) {
  GEMEL_THROW_IF_NOT(std::filesystem::exists(path), InputError,
                     "{}: weights file does not exist; check the path", path);
  GEMEL_THROW_IF_NOT(!std::filesystem::is_directory(path), InputError,
                     "{}: is a directory; expected a weights file written by torch.save", path);
  try {
    return std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error&) {
    throw InputError(format(
        "{}: not a PyTorch zip archive (it may be truncated, corrupt, or saved with the legacy "
        "format); re-save it in Python with torch.save(model.state_dict(), path)",
        path));
  }
}

bool isScriptArchive(caffe2::serialize::PyTorchStreamReader& reader) {
  if (reader.hasRecord("constants.pkl")) return true;
  for (const auto& name : reader.getAllRecords()) {
    if (name.rfind("code/", 0) == 0) return true;
  }
  return false;
}

const char* kindName(pickle::Value::Kind kind) {
  using K = pickle::Value::Kind;
  switch (kind) {
    case K::kNone:
      return "None";
    case K::kBool:
      return "a bool";
    case K::kInt:
      return "an int";
    case K::kFloat:
      return "a float";
    case K::kString:
      return "a string";
    case K::kBytes:
      return "bytes";
    case K::kTuple:
      return "a tuple";
    case K::kList:
      return "a list";
    case K::kDict:
      return "a dict";
    case K::kGlobal:
      return "a class";
    case K::kStorage:
      return "a storage";
    case K::kTensor:
      return "a tensor";
    case K::kObject:
      return "an object";
  }
  return "a value";
}

}  // namespace

namespace {

WeightsFile readWeightsUnguarded(const std::string& path) {
  auto reader = open(path);
  GEMEL_THROW_IF_NOT(
      !isScriptArchive(*reader), InputError,
      "{}: is a TorchScript module, not a state_dict; use it with arch: torchscript, "
      "or save the weights with torch.save(model.state_dict(), path)",
      path);
  GEMEL_THROW_IF_NOT(reader->hasRecord("data.pkl"), InputError,
                     "{}: holds no data.pkl record; expected a file written by torch.save", path);
  std::vector<char> pkl;
  try {
    auto [ptr, size] = reader->getRecord("data.pkl");
    const auto* bytes = static_cast<const char*>(ptr.get());
    pkl.assign(bytes, bytes + size);
  } catch (const c10::Error&) {
    throw InputError(
        format("{}: data.pkl cannot be read (corrupt archive); re-save the file", path));
  }

  const pickle::StorageLoader loader = [&](const std::string& key, torch::ScalarType dtype,
                                           int64_t numel) {
    const auto record = "data/" + key;
    GEMEL_THROW_IF_NOT(reader->hasRecord(record), InputError,
                       "{}: tensor data '{}' is missing from the archive (truncated file?)", path,
                       record);
    try {
      auto [ptr, size] = reader->getRecord(record);
      const auto need = static_cast<size_t>(numel) * torch::elementSize(dtype);
      GEMEL_THROW_IF_NOT(size >= need, InputError,
                         "{}: tensor data '{}' holds {} bytes, {} expected (truncated file?)", path,
                         record, size, need);
      return torch::from_blob(ptr.get(), {numel}, torch::TensorOptions().dtype(dtype)).clone();
    } catch (const c10::Error&) {
      throw InputError(
          format("{}: tensor data '{}' cannot be read (corrupt archive)", path, record));
    }
  };
  const auto root = pickle::unpickle(pkl, loader, path);

  using K = pickle::Value::Kind;
  if (isPickledModule(root)) return readPickledModule(root, path);
  GEMEL_THROW_IF_NOT(root->kind == K::kDict, InputError,
                     "{}: holds {}{}, not a state_dict or a model; save model.state_dict() with "
                     "torch.save",
                     path, kindName(root->kind),
                     root->kind == K::kObject ? " of class " + root->s : std::string());
  WeightsFile file;
  auto& out = file.state;
  for (const auto& [key, value] : root->dict) {
    GEMEL_THROW_IF_NOT(key->kind == K::kString, InputError,
                       "{}: a state_dict key is {}, not a string", path, kindName(key->kind));
    if (value->kind == K::kDict) {
      throw InputError(
          format("{}: key '{}' holds a nested dict: this looks like a training "
                 "checkpoint; save checkpoint['{}'] (the model's state_dict) on its own",
                 path, key->s, key->s));
    }
    GEMEL_THROW_IF_NOT(value->kind == K::kTensor, InputError,
                       "{}: key '{}' holds {}, not a tensor; expected a state_dict of tensors",
                       path, key->s, kindName(value->kind));
    out.emplace_back(key->s, value->tensor);
  }
  return file;
}

}  // namespace

StateDict readStateDict(const std::string& path) { return readWeightsFile(path).state; }

void checkWeightsArch(const WeightsFile& file, const std::string& path, const std::string& arch) {
  GEMEL_THROW_IF_NOT(file.arch.empty() || file.arch == arch, InputError,
                     "{}: holds a pickled {} built as '{}', not arch '{}'; set the task's arch to "
                     "'{}', or give weights of a {}",
                     path, file.module_class, file.arch, arch, file.arch, arch);
}

WeightsFile readWeightsFile(const std::string& path) {
  // LibTorch's archive reader checks the zip's structure as it goes (record names, sizes,
  // alignment) and throws c10::Error on a malformed one: the user's error, said once.
  try {
    return readWeightsUnguarded(path);
  } catch (const c10::Error& e) {
    throw InputError(
        format("{}: a corrupt PyTorch archive ({}); re-save it in Python with "
               "torch.save(model.state_dict(), path)",
               path, e.what_without_backtrace()));
  }
}

bool isTorchScriptFile(const std::string& path) {
  try {
    auto reader = open(path);
    return isScriptArchive(*reader);
  } catch (const c10::Error& e) {
    throw InputError(
        format("{}: a corrupt PyTorch archive ({}); re-save it", path, e.what_without_backtrace()));
  }
}

namespace {

// Writes the pickles that Python's torch.save writes (protocol 2): dicts and
// OrderedDicts of torch._utils._rebuild_tensor_v2 calls over persistent storage ids. We do not
// use torch::pickle_save: it wraps the dict in torch.jit._pickle.restore_type_tag, which
// torch.load's default weights_only mode (PyTorch >= 2.6) refuses.
class StateDictPickler {
 public:
  StateDictPickler() { out_ += "\x80\x02"; }  // PROTO 2
  void global(const std::string& module, const std::string& name) {
    out_ += "c" + module + "\n" + name + "\n";
  }
  void mark() { out_ += '('; }
  void op(char code) { out_ += code; }
  void string(const std::string& s) {
    out_ += 'X';
    appendLittle(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += 'K';
      out_ += static_cast<char>(v);
    } else if (v >= 0 && v < 65536) {
      out_ += 'M';
      appendLittle(static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';
      appendLittle(static_cast<int32_t>(v));
    } else {
      out_ += "\x8a\x08";  // LONG1, 8 bytes two's complement
      appendLittle(v);
    }
  }
  void ints(const std::vector<int64_t>& values) {
    mark();
    for (const auto v : values) integer(v);
    op('t');
  }
  void emptyOrderedDict() {
    global("collections", "OrderedDict");
    op(')');
    op('R');
  }

  // A tensor over its storage, each storage pickled (and later written) once: tensors that
  // share storage in gemel share it in the file, and torch.load gives them one storage again.
  void tensor(const torch::Tensor& tensor) {
    auto t = tensor.detach().to(torch::kCPU);
    // A view of part of a larger storage gets its own copy: the file holds what is used.
    const auto bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
    if (!t.is_contiguous() || t.storage_offset() != 0 || t.storage().nbytes() != bytes)
      t = t.clone(at::MemoryFormat::Contiguous);
    const auto* impl = t.storage().unsafeGetStorageImpl();
    auto it = keys_.find(impl);
    if (it == keys_.end()) {
      it = keys_.emplace(impl, std::to_string(storages_.size())).first;
      storages_.push_back(t);
    }
    global("torch._utils", "_rebuild_tensor_v2");
    mark();
    mark();
    string("storage");
    global("torch", pickle::storageTypeName(t.scalar_type()));
    string(it->second);
    string("cpu");
    integer(static_cast<int64_t>(t.storage().nbytes() / t.element_size()));
    op('t');
    op('Q');  // BINPERSID
    integer(t.storage_offset());
    ints(t.sizes().vec());
    ints(t.strides().vec());
    op('\x89');          // requires_grad = False
    emptyOrderedDict();  // backward hooks
    op('t');
    op('R');
  }

  void stateDict(const StateDict& state) {
    emptyOrderedDict();
    mark();
    for (const auto& [name, t] : state) {
      GEMEL_ASSERT(t.defined(), "state_dict entry '{}' is undefined", name);
      string(name);
      tensor(t);
    }
    op('u');  // SETITEMS
  }

  // The pickle ends; `path` gets the archive, through a temporary file and a rename.
  void write(const std::string& path) {
    op('.');  // STOP
    AtomicFileWriter file(path);
    // A failed write (a full disk) is kept and rethrown once the zip writer is done: thrown
    // through miniz, or reported to it as a short write, it ends in an exception from the
    // writer's destructor, which terminates the process.
    std::exception_ptr failed;
    {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
        if (!failed) {
          try {
            file.write(data, size);
          } catch (...) {
            failed = std::current_exception();
          }
        }
        return size;
      });
      writer.writeRecord("data.pkl", out_.data(), out_.size());
      writer.writeRecord("byteorder", "little", 6);
      for (std::size_t i = 0; i < storages_.size(); ++i) {
        const auto& storage = storages_[i].storage();
        writer.writeRecord("data/" + std::to_string(i), storage.data(), storage.nbytes());
      }
      writer.writeEndOfFile();
    }
    if (failed) std::rethrow_exception(failed);
    file.commit();
  }

 private:
  template <typename T>
  void appendLittle(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    out_.append(buf, sizeof(T));
  }
  std::string out_;
  std::map<const void*, std::string> keys_;  // storage -> its record key
  std::vector<torch::Tensor> storages_;      // a tensor of each storage, in key order
};

}  // namespace

void writeStateDict(const std::string& path, const StateDict& state) {
  StateDictPickler p;
  p.stateDict(state);
  p.write(path);
}

void writeMergedWorkload(const std::string& path, const std::vector<MergedTask>& tasks) {
  StateDictPickler p;
  p.op('}');  // {"format": ..., "version": 1, "tasks": {name: {...}}}
  p.mark();
  p.string("format");
  p.string("gemel-merged-workload");
  p.string("version");
  p.integer(1);
  p.string("tasks");
  p.op('}');
  p.mark();
  for (const auto& t : tasks) {
    p.string(t.name);
    p.op('}');
    p.mark();
    p.string("arch");
    p.string(t.arch);
    p.string("num_classes");
    p.integer(t.num_classes);
    p.string("state_dict");
    p.stateDict(t.state);
    p.op('u');
  }
  p.op('u');
  p.op('u');
  p.write(path);
}

}  // namespace gemel::models
