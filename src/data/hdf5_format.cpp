#include "hdf5_format.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>

#include "gemel/core/format.h"
#include "hdf5.h"

namespace gemel::h5 {
namespace {

// The opaque type that receives descriptors as stored; only this conversion produces it.
constexpr const char* kDescriptorTag = "gemel variable-length descriptor";
// No string gemel stores comes near this; a larger collection is a corrupt size field.
constexpr std::uint64_t kMaxCollectionBytes = 1ULL << 30;

bool readAt(const std::string& path, std::uint64_t offset, unsigned char* out, std::size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(bytes));
  return static_cast<bool>(in);
}

// An HDF5 soft conversion from a variable-length string to the tagged opaque type of the same
// size: the buffer already holds the stored descriptors, so nothing moves and libhdf5 never
// reads the global heap.
herr_t copyDescriptors(hid_t src, hid_t dst, H5T_cdata_t* cdata, size_t /*nelmts*/,
                       size_t /*buf_stride*/, size_t /*bkg_stride*/, void* /*buf*/, void* /*bkg*/,
                       hid_t /*dxpl*/) {
  switch (cdata->command) {
    case H5T_CONV_INIT: {
      if (H5Tis_variable_str(src) <= 0 || H5Tget_class(dst) != H5T_OPAQUE) return -1;
      char* tag = H5Tget_tag(dst);
      const bool ours = tag != nullptr && std::strcmp(tag, kDescriptorTag) == 0;
      H5free_memory(tag);
      if (!ours) return -1;
      cdata->need_bkg = H5T_BKG_NO;
      return 0;
    }
    case H5T_CONV_CONV:
      return H5Tget_size(src) == H5Tget_size(dst) ? 0 : -1;
    case H5T_CONV_FREE:
      return 0;
  }
  return -1;
}

void registerDescriptorCopy() {
  static std::once_flag once;
  std::call_once(once, [] {
    Handle vlen(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(vlen.id(), H5T_VARIABLE);
    Handle opaque(H5Tcreate(H5T_OPAQUE, 1), H5Tclose);
    H5Tset_tag(opaque.id(), kDescriptorTag);
    if (H5Tregister(H5T_PERS_SOFT, "gemel_vlen_descriptor", vlen.id(), opaque.id(),
                    copyDescriptors) < 0)
      throw std::logic_error("HDF5 refused gemel's variable-length descriptor conversion");
  });
}

// Global heap collections of one file, read with bounds checks ("GCOL", version 1, its size,
// then objects: index u16, references u16, 4 reserved bytes, size, data padded to 8 bytes).
class HeapReader {
 public:
  HeapReader(const File& file, const std::string& object, const std::string& name)
      : file_(file), object_(object), name_(name) {
    Handle fcpl(H5Fget_create_plist(file.id()), H5Pclose);
    hsize_t userblock = 0;
    if (!fcpl.valid() || H5Pget_sizes(fcpl.id(), &addr_bytes_, &length_bytes_) < 0 ||
        H5Pget_userblock(fcpl.id(), &userblock) < 0)
      corrupt("cannot read the file's address sizes");
    base_ = userblock;
    const ssize_t n = H5Fget_name(file.id(), nullptr, 0);
    std::vector<char> path(n > 0 ? static_cast<std::size_t>(n) + 1 : 1, '\0');
    if (n <= 0 || H5Fget_name(file.id(), path.data(), path.size()) < 0)
      corrupt("cannot name the file");
    path_ = path.data();
    std::error_code ec;
    file_bytes_ = std::filesystem::file_size(path_, ec);
    if (ec) corrupt("cannot reopen the file to read it");
  }

  std::size_t addressBytes() const { return addr_bytes_; }

  std::string object(std::uint64_t address, std::uint32_t index, std::uint32_t length) {
    const auto& c = collection(address);
    const std::size_t header = 8 + length_bytes_;
    std::size_t p = 8 + length_bytes_;
    while (p + header <= c.size()) {
      const auto idx = static_cast<std::uint32_t>(decodeLittleEndian(&c[p], 2));
      const std::uint64_t size = decodeLittleEndian(&c[p + 8], length_bytes_);
      const std::uint64_t room = c.size() - p - header;
      if (idx == index && idx != 0) {
        if (size < length || size > room)
          corrupt(format("global heap object {} at {} holds {} bytes, not {}", index, address, size,
                         length));
        return std::string(reinterpret_cast<const char*>(&c[p + header]), length);
      }
      // Object 0 is free space, whose size counts its header; the others are padded to 8.
      if (size > room + header)
        corrupt(format("global heap object {} overruns its collection", idx));
      const std::uint64_t step = idx == 0 ? size : header + ((size + 7) & ~std::uint64_t{7});
      if (step < header || step > c.size() - p)
        corrupt(format("global heap collection at {} has an object of size {}", address, size));
      p += step;
    }
    corrupt(format("global heap collection at {} has no object {}", address, index));
  }

 private:
  [[noreturn]] void corrupt(const std::string& why) const {
    file_.fail(object_, "attribute '" + name_ + "' is corrupt (" + why + ")");
  }

  void read(std::uint64_t offset, unsigned char* out, std::size_t bytes) const {
    if (!readAt(path_, offset, out, bytes))
      corrupt(format("cannot read {} bytes at offset {}", bytes, offset));
  }

  const std::vector<unsigned char>& collection(std::uint64_t address) {
    if (auto it = cache_.find(address); it != cache_.end()) return it->second;
    const std::size_t header = 8 + length_bytes_;
    const std::uint64_t offset = base_ + address;
    if (address >= file_bytes_ || offset > file_bytes_ || file_bytes_ - offset < header)
      corrupt(format("its global heap collection at {} lies past the end of the file", address));
    std::vector<unsigned char> head(header);
    read(offset, head.data(), header);
    if (std::memcmp(head.data(), "GCOL", 4) != 0 || head[4] != 1)
      corrupt(format("no global heap collection at {}", address));
    const std::uint64_t size = decodeLittleEndian(&head[8], length_bytes_);
    if (size < header || size > kMaxCollectionBytes || size > file_bytes_ - offset)
      corrupt(format("the global heap collection at {} claims {} bytes", address, size));
    std::vector<unsigned char> bytes(size);
    read(offset, bytes.data(), size);
    return cache_.emplace(address, std::move(bytes)).first->second;
  }

  const File& file_;
  std::string object_, name_;
  std::size_t addr_bytes_ = 8, length_bytes_ = 8;
  std::uint64_t base_ = 0, file_bytes_ = 0;
  std::string path_;
  std::map<std::uint64_t, std::vector<unsigned char>> cache_;
};

}  // namespace

std::uint64_t decodeLittleEndian(const unsigned char* p, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

std::optional<Superblock> readSuperblock(const std::string& path) {
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return std::nullopt;
  for (std::uint64_t at = 0; at + 9 <= size; at = at == 0 ? 512 : at * 2) {
    // Signature, version, sizes of offsets and lengths, flags; then (versions 2 and 3) the
    // base, extension, end-of-file and root addresses, and a checksum.
    unsigned char b[12 + 4 * 8] = {};
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof b, size - at));
    if (!readAt(path, at, b, want) || std::memcmp(b, kSignature, 8) != 0) continue;
    Superblock s;
    s.version = b[8];
    const std::size_t o = b[9];
    if (s.version < 2 || (o != 2 && o != 4 && o != 8) || want < 12 + 4 * o) return s;
    const std::uint64_t undefined = o == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * o)) - 1;
    s.base = decodeLittleEndian(b + 12, o);
    const std::uint64_t extension = decodeLittleEndian(b + 12 + o, o);
    if (extension != undefined) s.extension = extension;
    s.root = decodeLittleEndian(b + 12 + 3 * o, o);
    s.complete = true;
    return s;
  }
  return std::nullopt;
}

bool objectHeaderAt(const std::string& path, std::uint64_t offset) {
  unsigned char b[4] = {};
  return readAt(path, offset, b, sizeof b) && std::memcmp(b, "OHDR", 4) == 0;
}

std::vector<std::string> readVariableStrings(const File& file, hid_t attr, std::size_t count,
                                             const std::string& object, const std::string& name) {
  registerDescriptorCopy();
  // The collections are read from the file itself: a writable file's cache goes there first.
  unsigned intent = 0;
  if (H5Fget_intent(file.id(), &intent) >= 0 && (intent & H5F_ACC_RDWR) != 0 &&
      H5Fflush(file.id(), H5F_SCOPE_LOCAL) < 0)
    file.fail(object, "cannot flush the file to read attribute '" + name + "'");
  HeapReader heap(file, object, name);
  // A descriptor: the string's length (u32), its collection's address, its object index (u32).
  const std::size_t descriptor = 8 + heap.addressBytes();
  if (count > H5Aget_storage_size(attr) / descriptor)
    file.fail(object, format("attribute '{}' claims {} strings in {} bytes", name, count,
                             H5Aget_storage_size(attr)));
  Handle type(H5Tcreate(H5T_OPAQUE, descriptor), H5Tclose);
  H5Tset_tag(type.id(), kDescriptorTag);
  std::vector<unsigned char> raw(count * descriptor);
  if (H5Aread(attr, type.id(), raw.data()) < 0)
    file.fail(object, "cannot read attribute '" + name + "'");
  std::vector<std::string> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const unsigned char* d = &raw[i * descriptor];
    const auto length = static_cast<std::uint32_t>(decodeLittleEndian(d, 4));
    const std::uint64_t address = decodeLittleEndian(d + 4, heap.addressBytes());
    const auto index =
        static_cast<std::uint32_t>(decodeLittleEndian(d + 4 + heap.addressBytes(), 4));
    // Address 0 is a null string; length 0 an empty one.
    out.push_back(length == 0 || address == 0 ? std::string()
                                              : heap.object(address, index, length));
  }
  return out;
}

}  // namespace gemel::h5
