#include "pickle_reader.h"

#include <cstring>
#include <map>
#include <unordered_map>

#include "gemel/core/error.h"

namespace gemel::models::pickle {
namespace {

using Kind = Value::Kind;

ValuePtr make(Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

torch::ScalarType dtypeFromGlobal(const std::string& name, bool& known) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.float32", torch::kFloat}, {"torch.float64", torch::kDouble},
      {"torch.float16", torch::kHalf},  {"torch.bfloat16", torch::kBFloat16},
      {"torch.int64", torch::kLong},    {"torch.int32", torch::kInt},
      {"torch.int16", torch::kShort},   {"torch.int8", torch::kChar},
      {"torch.uint8", torch::kByte},    {"torch.bool", torch::kBool},
  };
  const auto it = types.find(name);
  known = it != types.end();
  return known ? it->second : torch::kByte;
}

class Machine {
 public:
  Machine(const std::vector<char>& data, const StorageLoader& loader, const std::string& source)
      : data_(data), loader_(loader), source_(source) {}

  ValuePtr run() {
    while (true) {
      const auto at = pos_;
      const auto op = static_cast<uint8_t>(byte());
      if (op == '.') break;  // STOP
      step(op, at);
    }
    require(stack_.size() == 1, "the pickle does not end with exactly one value");
    return stack_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(
        format("{}: cannot read the pickle: {} (at byte {}); the file may be corrupt or not "
               "written by torch.save",
               source_, what, pos_));
  }
  void require(bool cond, const std::string& what) const {
    if (!cond) fail(what);
  }

  char byte() {
    require(pos_ < data_.size(), "unexpected end of data");
    return data_[pos_++];
  }
  const char* take(std::size_t n) {
    require(pos_ + n <= data_.size(), "unexpected end of data");
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T little() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;  // x86-64 and aarch64 are little-endian, as pickle's binary ints are
  }
  std::string line() {
    std::string out;
    for (char c = byte(); c != '\n'; c = byte()) out += c;
    return out;
  }

  ValuePtr pop() {
    require(!stack_.empty(), "stack underflow");
    auto v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> popToMark() {
    require(!marks_.empty(), "no MARK on the stack");
    const auto start = marks_.back();
    marks_.pop_back();
    require(start <= stack_.size(), "broken MARK");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  ValuePtr& top() {
    require(!stack_.empty(), "stack underflow");
    return stack_.back();
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }

  ValuePtr tuple(std::vector<ValuePtr> items) {
    auto v = make(Kind::kTuple);
    v->items = std::move(items);
    return v;
  }
  ValuePtr integer(int64_t i) {
    auto v = make(Kind::kInt);
    v->i = i;
    return v;
  }
  ValuePtr string(std::string s, Kind kind = Kind::kString) {
    auto v = make(kind);
    v->s = std::move(s);
    return v;
  }

  void setItems(const ValuePtr& dict, const std::vector<ValuePtr>& kv) {
    require(dict->kind == Kind::kDict, "SETITEM(S) on something that is not a dict");
    require(kv.size() % 2 == 0, "odd number of items for a dict");
    for (std::size_t i = 0; i < kv.size(); i += 2) dict->dict.emplace_back(kv[i], kv[i + 1]);
  }

  std::vector<int64_t> ints(const ValuePtr& v, const char* what) {
    require(v->kind == Kind::kTuple || v->kind == Kind::kList,
            std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& item : v->items) {
      require(item->kind == Kind::kInt, std::string(what) + " holds a non-integer");
      out.push_back(item->i);
    }
    return out;
  }

  ValuePtr rebuildTensor(const std::vector<ValuePtr>& args, bool v3) {
    require(args.size() >= (v3 ? 7u : 4u), "tensor rebuild with too few arguments");
    const auto& storage = args[0];
    require(storage->kind == Kind::kStorage, "tensor rebuild without a storage");
    require(args[1]->kind == Kind::kInt, "tensor rebuild with a non-integer offset");
    torch::Tensor base = storage->tensor;
    if (v3) {
      require(args[6]->kind == Kind::kGlobal, "tensor rebuild (v3) without a dtype");
      bool known = false;
      const auto dtype = dtypeFromGlobal(args[6]->s, known);
      require(known, "unsupported dtype " + args[6]->s);
      if (base.scalar_type() != dtype) {
        require(base.scalar_type() == torch::kByte, "storage and tensor dtypes disagree");
        base = base.view(dtype);
      }
    }
    const auto size = ints(args[2], "tensor size");
    const auto stride = ints(args[3], "tensor stride");
    require(size.size() == stride.size(), "tensor size and stride differ in length");
    int64_t last = args[1]->i;  // highest element index the view touches
    for (std::size_t d = 0; d < size.size(); ++d) {
      require(size[d] >= 0 && stride[d] >= 0, "negative tensor size or stride");
      if (size[d] == 0) last = -1;
      if (last >= 0) last += (size[d] - 1) * stride[d];
    }
    require(last < base.numel(), "tensor view reaches past its storage (truncated data?)");
    auto v = make(Kind::kTensor);
    v->tensor = base.as_strided(size, stride, args[1]->i);
    return v;
  }

  ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args) {
    require(callable->kind == Kind::kGlobal, "REDUCE on something that is not a global");
    require(args->kind == Kind::kTuple, "REDUCE without an argument tuple");
    const auto& name = callable->s;
    if (name == "collections.OrderedDict" || name == "builtins.dict" || name == "__builtin__.dict")
      return make(Kind::kDict);
    if (name == "builtins.set" || name == "__builtin__.set" || name == "builtins.frozenset" ||
        name == "__builtin__.frozenset") {  // set(list): kept as a list
      auto v = make(Kind::kList);
      if (!args->items.empty() && args->items[0]->kind == Kind::kList)
        v->items = args->items[0]->items;
      return v;
    }
    if (name == "copy_reg._reconstructor" || name == "copyreg._reconstructor") {
      // (cls, base, state) of protocol 0/1 objects: an object of class cls
      require(!args->items.empty() && args->items[0]->kind == Kind::kGlobal,
              "_reconstructor without a class");
      auto v = make(Kind::kObject);
      v->s = args->items[0]->s;
      return v;
    }
    if (name == "torch._utils._rebuild_tensor_v2") return rebuildTensor(args->items, false);
    if (name == "torch._utils._rebuild_tensor_v3") return rebuildTensor(args->items, true);
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      require(!args->items.empty() && args->items[0]->kind == Kind::kTensor,
              "parameter rebuild without a tensor");
      return args->items[0];
    }
    auto v = make(Kind::kObject);
    v->s = name;
    v->items = args->items;
    return v;
  }

  ValuePtr persistentLoad(const ValuePtr& pid) {
    require(pid->kind == Kind::kTuple && pid->items.size() >= 5, "unknown persistent id");
    const auto& it = pid->items;
    require(it[0]->kind == Kind::kString && it[0]->s == "storage",
            "persistent id is not a storage");
    require(it[1]->kind == Kind::kGlobal, "storage without a type");
    require(it[2]->kind == Kind::kString, "storage without a key");
    require(it[4]->kind == Kind::kInt, "storage without a size");
    const std::string& type = it[1]->s;
    auto dtype = torch::kByte;
    require(type.rfind("torch.", 0) == 0 && storageDtype(type.substr(6), dtype),
            "unsupported storage type " + type);
    const auto key = it[2]->s;
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      auto v = make(Kind::kStorage);
      v->tensor = loader_(key, dtype, it[4]->i);
      cached = storages_.emplace(key, v).first;
    }
    return cached->second;
  }

  // One opcode; each group below returns false for an opcode that is not its own.
  void step(uint8_t op, std::size_t at) {
    if (framing(op) || scalar(op) || text(op) || container(op) || memo(op) || object(op)) return;
    pos_ = at;
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", op);
    fail(std::string("unsupported pickle opcode ") + hex);
  }

  bool framing(uint8_t op) {
    switch (op) {
      case 0x80:
        byte();
        return true;  // PROTO
      case 0x95:
        take(8);
        return true;  // FRAME
      case '(':
        marks_.push_back(stack_.size());
        return true;  // MARK
      case 'b': {     // BUILD: an object's state; a dict's (the state_dict's _metadata) is unused
        auto state = pop();
        if (top()->kind == Kind::kObject) top()->state = state;
        return true;
      }
      default:
        return false;
    }
  }

  bool scalar(uint8_t op) {
    switch (op) {
      case 'N':
        push(make(Kind::kNone));
        return true;
      case 0x88:
      case 0x89: {  // NEWTRUE / NEWFALSE
        auto v = make(Kind::kBool);
        v->i = op == 0x88;
        push(v);
        return true;
      }
      case 'K':
        push(integer(static_cast<uint8_t>(byte())));
        return true;  // BININT1
      case 'M':
        push(integer(little<uint16_t>()));
        return true;  // BININT2
      case 'J':
        push(integer(little<int32_t>()));
        return true;  // BININT
      case 0x8a: {    // LONG1
        const auto n = static_cast<uint8_t>(byte());
        require(n <= 8, "integer too large");
        const char* p = take(n);
        int64_t value = 0;
        for (int i = n - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(p[i]);
        if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80))
          value -= int64_t(1) << (8 * n);
        push(integer(value));
        return true;
      }
      case 'G': {  // BINFLOAT (big-endian)
        const char* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(p[i]);
        auto v = make(Kind::kFloat);
        std::memcpy(&v->f, &bits, 8);
        push(v);
        return true;
      }
      default:
        return false;
    }
  }

  // Strings and bytes: the length prefix is 1, 4 (signed for 'T') or 8 bytes wide.
  bool text(uint8_t op) {
    Kind kind = Kind::kString;
    std::size_t n = 0;
    switch (op) {
      case 0x8c:  // SHORT_BINUNICODE
      case 'U':   // SHORT_BINSTRING
        n = static_cast<uint8_t>(byte());
        break;
      case 'X':  // BINUNICODE
        n = little<uint32_t>();
        break;
      case 'T': {  // BINSTRING
        const auto len = little<int32_t>();
        require(len >= 0, "negative length");
        n = static_cast<std::size_t>(len);
        break;
      }
      case 'C':  // SHORT_BINBYTES
        n = static_cast<uint8_t>(byte());
        kind = Kind::kBytes;
        break;
      case 'B':  // BINBYTES
        n = little<uint32_t>();
        kind = Kind::kBytes;
        break;
      default:
        return false;
    }
    push(string(std::string(take(n), n), kind));
    return true;
  }

  bool container(uint8_t op) {
    switch (op) {
      case ')':
        push(tuple({}));
        return true;  // EMPTY_TUPLE
      case 't':
        push(tuple(popToMark()));
        return true;  // TUPLE
      case 0x85:      // TUPLE1..3
      case 0x86:
      case 0x87: {
        std::vector<ValuePtr> items(op - 0x84);
        for (auto i = items.rbegin(); i != items.rend(); ++i) *i = pop();
        push(tuple(std::move(items)));
        return true;
      }
      case ']':
        push(make(Kind::kList));
        return true;  // EMPTY_LIST
      case 'l': {     // LIST
        auto v = make(Kind::kList);
        v->items = popToMark();
        push(v);
        return true;
      }
      case 'a': {  // APPEND
        auto item = pop();
        require(top()->kind == Kind::kList, "APPEND to a non-list");
        top()->items.push_back(item);
        return true;
      }
      case 'e': {  // APPENDS
        auto items = popToMark();
        require(top()->kind == Kind::kList, "APPENDS to a non-list");
        for (auto& i : items) top()->items.push_back(i);
        return true;
      }
      case '}':
        push(make(Kind::kDict));
        return true;  // EMPTY_DICT
      case 'd': {     // DICT
        auto v = make(Kind::kDict);
        setItems(v, popToMark());
        push(v);
        return true;
      }
      case 's': {  // SETITEM
        auto value = pop();
        auto key = pop();
        setItems(top(), {key, value});
        return true;
      }
      case 'u':
        setItems(top(), popToMark());
        return true;  // SETITEMS
      case 0x8f:      // EMPTY_SET (protocol 4): kept as a list
        push(make(Kind::kList));
        return true;
      case 0x90: {  // ADDITEMS
        auto items = popToMark();
        require(top()->kind == Kind::kList, "ADDITEMS to a non-set");
        for (auto& i : items) top()->items.push_back(i);
        return true;
      }
      case 0x91: {  // FROZENSET
        auto v = make(Kind::kList);
        v->items = popToMark();
        push(v);
        return true;
      }
      default:
        return false;
    }
  }

  bool memo(uint8_t op) {
    switch (op) {
      case 'q':
        memo_[static_cast<uint8_t>(byte())] = top();
        return true;  // BINPUT
      case 'r':
        memo_[little<uint32_t>()] = top();
        return true;  // LONG_BINPUT
      case 0x94:
        memo_[memo_.size()] = top();
        return true;  // MEMOIZE
      case 'h':
      case 'j': {  // BINGET / LONG_BINGET
        const uint32_t id = op == 'h' ? static_cast<uint8_t>(byte()) : little<uint32_t>();
        const auto it = memo_.find(id);
        require(it != memo_.end(), "memo entry " + std::to_string(id) + " missing");
        push(it->second);
        return true;
      }
      default:
        return false;
    }
  }

  bool object(uint8_t op) {
    switch (op) {
      case 'c': {  // GLOBAL
        auto module = line();
        auto name = line();
        push(string(module + "." + name, Kind::kGlobal));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        require(name->kind == Kind::kString && module->kind == Kind::kString, "bad STACK_GLOBAL");
        push(string(module->s + "." + name->s, Kind::kGlobal));
        return true;
      }
      case 'R': {  // REDUCE
        auto args = pop();
        auto callable = pop();
        push(reduce(callable, args));
        return true;
      }
      case 'Q':
        push(persistentLoad(pop()));
        return true;  // BINPERSID
      case 0x81:      // NEWOBJ: cls.__new__(cls, *args)
      case 0x92: {    // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
        if (op == 0x92) pop();
        auto args = pop();
        auto cls = pop();
        require(cls->kind == Kind::kGlobal, "NEWOBJ of something that is not a class");
        require(args->kind == Kind::kTuple, "NEWOBJ without an argument tuple");
        auto v = make(Kind::kObject);
        v->s = cls->s;
        v->items = args->items;
        push(v);
        return true;
      }
      default:
        return false;
    }
  }

  const std::vector<char>& data_;
  const StorageLoader& loader_;
  const std::string& source_;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<uint32_t, ValuePtr> memo_;
  std::unordered_map<std::string, ValuePtr> storages_;
};

}  // namespace

ValuePtr Value::get(const std::string& key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : dict) {
    if (k->kind == Kind::kString && k->s == key) return v;
  }
  return nullptr;
}

ValuePtr unpickle(const std::vector<char>& data, const StorageLoader& load_storage,
                  const std::string& source) {
  return Machine(data, load_storage, source).run();
}

namespace {
struct StorageType {
  const char* name;
  torch::ScalarType dtype;
};
// Writers take the first entry of a dtype, so UntypedStorage (read-only alias) comes last.
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", torch::kFloat},  {"DoubleStorage", torch::kDouble},
    {"HalfStorage", torch::kHalf},    {"BFloat16Storage", torch::kBFloat16},
    {"LongStorage", torch::kLong},    {"IntStorage", torch::kInt},
    {"ShortStorage", torch::kShort},  {"CharStorage", torch::kChar},
    {"ByteStorage", torch::kByte},    {"BoolStorage", torch::kBool},
    {"UntypedStorage", torch::kByte},
};
}  // namespace

bool storageDtype(const std::string& name, torch::ScalarType& dtype) {
  for (const auto& t : kStorageTypes) {
    if (name == t.name) {
      dtype = t.dtype;
      return true;
    }
  }
  return false;
}

std::string storageTypeName(torch::ScalarType dtype) {
  for (const auto& t : kStorageTypes) {
    if (t.dtype == dtype) return t.name;
  }
  throw InputError(
      format("cannot save a tensor of dtype {} in a state_dict file", c10::toString(dtype)));
}

}  // namespace gemel::models::pickle
