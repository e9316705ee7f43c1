#include "hdf5.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "hdf5_format.h"

namespace gemel::h5 {
namespace {

// Every HDF5 call goes through this file, under one lock: a serial (not thread-safe) HDF5 build
// must never see two calls at once, and the loader's prefetch threads and the results store can
// meet. Recursive, since wrapped calls call each other.
std::recursive_mutex& h5Mutex() {
  static std::recursive_mutex m;
  return m;
}

struct Lock {
  std::lock_guard<std::recursive_mutex> guard{h5Mutex()};
};

// No clean-up at exit: a file whose flush failed (a full disk) stays open in the library, and
// HDF5 1.10's exit handler then crashes closing it again (in H5F__close_cb). Every file gemel
// writes is closed explicitly before it is committed, so the handler has nothing left to do.
// H5dont_atexit() must come before any other HDF5 call: this initialiser runs before main.
[[maybe_unused]] const bool kNoExitHandler = [] {
  H5dont_atexit();
  return true;
}();

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  const Lock lock;
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() { close(); }

herr_t Handle::close() {
  const Lock lock;
  herr_t status = 0;
  if (id_ >= 0 && closer_) status = closer_(id_);
  id_ = -1;
  return status;
}

void quietErrors() {
  const Lock lock;
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string libraryVersion() {
  const Lock lock;
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return format("{}.{}.{}", major, minor, release);
}

bool libraryThreadSafe() {
  const Lock lock;
  hbool_t safe = 0;
  H5is_library_threadsafe(&safe);
  return safe != 0;
}

void File::fail(const std::string& object, const std::string& what) const {
  const Lock lock;
  throw InputError(format("{}: {}{}{}", path_, what, object.empty() ? "" : " (" + object + ")",
                          remedy_.empty() ? "" : "; " + remedy_));
}

void File::failWrite(const std::string& object, const std::string& what, int err) const {
  const Lock lock;
  throw OutputError(format("{}: {}{} ({}); a file it would replace is left as it was", path_, what,
                           object.empty() ? "" : " (" + object + ")", writeFailure(path_, err)));
}

File File::create(const std::string& path, const std::string& shown_as) {
  const Lock lock;
  quietErrors();
  errno = 0;
  const auto& name = shown_as.empty() ? path : shown_as;
  // The 1.10 format: checksummed superblock, object headers, chunk indexes and heaps, which
  // File::open requires of what it reads.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  GEMEL_THROW_IF_NOT(id >= 0, OutputError,
                     "{}: cannot create the HDF5 file ({}); check that its directory exists and "
                     "is writable",
                     name, writeFailure(path, errno));
  return File(name, Handle(id, H5Fclose));
}

File File::open(const std::string& path, bool writable, const std::string& remedy) {
  const Lock lock;
  quietErrors();
  GEMEL_THROW_IF_NOT(std::filesystem::exists(path), InputError, "{}: no such file; check the path",
                     path);
  // The superblock and the root group's header are checked before libhdf5 reads them.
  const auto sb = readSuperblock(path);
  GEMEL_THROW_IF_NOT(sb.has_value(), InputError, "{}: not an HDF5 file (or a truncated one); {}",
                     path, remedy);
  GEMEL_THROW_IF_NOT(sb->version >= 2, InputError,
                     "{}: written in HDF5's original file format (superblock version {}), whose "
                     "metadata has no checksums, so gemel cannot tell a damaged file from a good "
                     "one (gemel writes and reads the 1.10 format); {}",
                     path, sb->version, remedy);
  GEMEL_THROW_IF_NOT(sb->complete && objectHeaderAt(path, sb->base + sb->root) &&
                         (!sb->extension || objectHeaderAt(path, sb->base + *sb->extension)),
                     InputError, "{}: cannot be opened as HDF5 (corrupt or truncated?); {}", path,
                     remedy);
  GEMEL_THROW_IF_NOT(H5Fis_hdf5(path.c_str()) > 0, InputError,
                     "{}: not an HDF5 file (or a truncated one); {}", path, remedy);
  const hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  GEMEL_THROW_IF_NOT(id >= 0, InputError,
                     "{}: cannot be opened as HDF5 (corrupt or truncated?); {}", path, remedy);
  File f(path, Handle(id, H5Fclose));
  f.remedy_ = remedy;
  f.verify_ = !writable;
  f.base_ = sb->base;
  f.verified_.push_back(sb->root);
  return f;
}

void File::close() {
  const Lock lock;
  if (!handle_.valid()) return;
  // HDF5 keeps metadata in its cache until the file is flushed: a full disk often shows only
  // here, and a file whose close failed is incomplete.
  errno = 0;
  unsigned intent = 0;
  const bool writable = H5Fget_intent(id(), &intent) >= 0 && (intent & H5F_ACC_RDWR) != 0;
  if (writable && H5Fflush(id(), H5F_SCOPE_LOCAL) < 0) failWrite("", "cannot be flushed", errno);
  if (handle_.close() < 0 && writable) failWrite("", "cannot be closed", errno);
}

bool File::exists(const std::string& object) const {
  const Lock lock;
  if (object == "/") return true;
  // Check each level: H5Lexists fails on a path whose parent is missing.
  std::string prefix;
  std::size_t pos = 1;
  while (pos <= object.size()) {
    const auto next = object.find('/', pos);
    prefix = object.substr(0, next);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    verifyHeader(prefix);
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return true;
}

void File::createGroup(const std::string& name) {
  const Lock lock;
  errno = 0;
  Handle g(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.valid()) failWrite(name, "cannot create group", errno);
}

void File::verifyHeader(const std::string& object) const {
  const Lock lock;
  if (!verify_) return;
  H5L_info_t link;
  if (H5Lget_info(id(), object.c_str(), &link, H5P_DEFAULT) < 0)
    fail(object, "cannot read its link");
  if (link.type != H5L_TYPE_HARD)
    fail(object, "is a soft or external link, which gemel never writes; the file was altered");
  const std::uint64_t address = link.u.address;
  if (std::find(verified_.begin(), verified_.end(), address) != verified_.end()) return;
  if (!objectHeaderAt(path_, base_ + address))
    fail(object, format("is corrupt: no checksummed object header at address {}", address));
  verified_.push_back(address);
}

Handle File::openObject(const std::string& object) const {
  const Lock lock;
  if (!exists(object)) fail(object, "missing object");
  Handle h(H5Oopen(id(), object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!h.valid()) fail(object, "missing object");
  return h;
}

namespace {

void writeAttr(const File& f, hid_t obj, const std::string& object, const std::string& name,
               hid_t type, hid_t space, const void* data) {
  const Lock lock;
  errno = 0;
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const bool empty = H5Sget_simple_extent_type(space) == H5S_NULL;  // nothing to write
  if (!attr.valid() || (!empty && H5Awrite(attr.id(), type, data) < 0))
    f.failWrite(object, "cannot write attribute '" + name + "'", errno);
}

// Variable-length UTF-8 strings: h5py reads them as str (fixed-length ones come back as bytes).
Handle stringType() {
  const Lock lock;
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.id(), H5T_VARIABLE);
  H5Tset_cset(t.id(), H5T_CSET_UTF8);
  return t;
}

}  // namespace

void File::setAttr(const std::string& object, const std::string& name, const std::string& value) {
  const Lock lock;
  auto obj = openObject(object);
  auto type = stringType();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const char* data = value.c_str();
  writeAttr(*this, obj.id(), object, name, type.id(), space.id(), &data);
}

void File::setAttr(const std::string& object, const std::string& name, int64_t value) {
  const Lock lock;
  auto obj = openObject(object);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  writeAttr(*this, obj.id(), object, name, H5T_NATIVE_INT64, space.id(), &value);
}

void File::setAttr(const std::string& object, const std::string& name, double value) {
  const Lock lock;
  auto obj = openObject(object);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  writeAttr(*this, obj.id(), object, name, H5T_NATIVE_DOUBLE, space.id(), &value);
}

void File::setAttr(const std::string& object, const std::string& name,
                   const std::vector<std::string>& values) {
  const Lock lock;
  auto obj = openObject(object);
  std::vector<const char*> data;
  for (const auto& v : values) data.push_back(v.c_str());
  auto type = stringType();
  const hsize_t n = values.size();
  // An empty list is a null dataspace (h5py reads it as h5py.Empty).
  Handle space(n > 0 ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), H5Sclose);
  writeAttr(*this, obj.id(), object, name, type.id(), space.id(), data.data());
}

void File::setListAttr(const std::string& object, const std::string& name, hid_t type,
                       const void* data, std::size_t n) {
  const Lock lock;
  auto obj = openObject(object);
  const hsize_t count = n;
  Handle space(n > 0 ? H5Screate_simple(1, &count, nullptr) : H5Screate(H5S_NULL), H5Sclose);
  writeAttr(*this, obj.id(), object, name, type, space.id(), data);
}

void File::setAttr(const std::string& object, const std::string& name,
                   const std::vector<double>& values) {
  setListAttr(object, name, H5T_NATIVE_DOUBLE, values.data(), values.size());
}

void File::setAttr(const std::string& object, const std::string& name,
                   const std::vector<int64_t>& values) {
  setListAttr(object, name, H5T_STD_I64LE, values.data(), values.size());
}

std::vector<std::string> File::children(const std::string& group) const {
  const Lock lock;
  if (!exists(group)) fail(group, "missing group");
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t index = 0;
  if (H5Literate_by_name(id(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names,
                         H5P_DEFAULT) < 0)
    fail(group, "cannot list the group");
  return names;
}

bool File::hasAttr(const std::string& object, const std::string& name) const {
  const Lock lock;
  if (!exists(object)) return false;
  auto obj = openObject(object);
  return H5Aexists(obj.id(), name.c_str()) > 0;
}

namespace {

struct OpenAttr {
  Handle obj, attr, type, space;
};

OpenAttr openAttr(const File& f, const std::string& object, const std::string& name, Handle obj) {
  const Lock lock;
  OpenAttr a;
  a.obj = std::move(obj);
  a.attr = Handle(H5Aopen(a.obj.id(), name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a.attr.valid()) f.fail(object, "missing attribute '" + name + "'");
  a.type = Handle(H5Aget_type(a.attr.id()), H5Tclose);
  a.space = Handle(H5Aget_space(a.attr.id()), H5Sclose);
  return a;
}

}  // namespace

std::string File::attrString(const std::string& object, const std::string& name) const {
  const Lock lock;
  auto a = openAttr(*this, object, name, openObject(object));
  if (H5Tget_class(a.type.id()) != H5T_STRING)
    fail(object, "attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(a.type.id()) > 0) {
    if (H5Sget_simple_extent_npoints(a.space.id()) != 1)
      fail(object, "attribute '" + name + "' is not one string");
    return readVariableStrings(*this, a.attr.id(), 1, object, name).front();
  }
  const auto size = H5Tget_size(a.type.id());
  std::vector<char> buf(size + 1, '\0');
  if (H5Aread(a.attr.id(), a.type.id(), buf.data()) < 0)
    fail(object, "cannot read attribute '" + name + "'");
  return std::string(buf.data());
}

int64_t File::attrInt(const std::string& object, const std::string& name) const {
  const Lock lock;
  auto a = openAttr(*this, object, name, openObject(object));
  if (H5Tget_class(a.type.id()) != H5T_INTEGER)
    fail(object, "attribute '" + name + "' is not an integer");
  int64_t v = 0;
  if (H5Aread(a.attr.id(), H5T_NATIVE_INT64, &v) < 0)
    fail(object, "cannot read attribute '" + name + "'");
  return v;
}

double File::attrDouble(const std::string& object, const std::string& name) const {
  const Lock lock;
  auto a = openAttr(*this, object, name, openObject(object));
  double v = 0;
  if (H5Aread(a.attr.id(), H5T_NATIVE_DOUBLE, &v) < 0)
    fail(object, "cannot read attribute '" + name + "'");
  return v;
}

std::vector<std::string> File::attrStrings(const std::string& object,
                                           const std::string& name) const {
  const Lock lock;
  auto a = openAttr(*this, object, name, openObject(object));
  if (H5Tget_class(a.type.id()) != H5T_STRING)
    fail(object, "attribute '" + name + "' is not a list of strings");
  const auto n = H5Sget_simple_extent_npoints(a.space.id());
  std::vector<std::string> out;
  if (n <= 0) return out;
  if (H5Tis_variable_str(a.type.id()) > 0)
    return readVariableStrings(*this, a.attr.id(), static_cast<std::size_t>(n), object, name);
  const auto width = H5Tget_size(a.type.id());
  std::vector<char> buf(width * n + 1, '\0');
  if (H5Aread(a.attr.id(), a.type.id(), buf.data()) < 0)
    fail(object, "cannot read attribute '" + name + "'");
  for (hssize_t i = 0; i < n; ++i)
    out.emplace_back(std::string(&buf[i * width], strnlen(&buf[i * width], width)));
  return out;
}

template <typename T>
std::vector<T> File::listAttr(const std::string& object, const std::string& name, int type_class,
                              hid_t memory_type, const char* what) const {
  const Lock lock;
  auto a = openAttr(*this, object, name, openObject(object));
  if (H5Tget_class(a.type.id()) != static_cast<H5T_class_t>(type_class))
    fail(object, "attribute '" + name + "' is not a list of " + what);
  std::vector<T> v(static_cast<std::size_t>(H5Sget_simple_extent_npoints(a.space.id())));
  if (!v.empty() && H5Aread(a.attr.id(), memory_type, v.data()) < 0)
    fail(object, "cannot read attribute '" + name + "'");
  return v;
}

std::vector<double> File::attrDoubles(const std::string& object, const std::string& name) const {
  return listAttr<double>(object, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, "numbers");
}

std::vector<int64_t> File::attrInts(const std::string& object, const std::string& name) const {
  return listAttr<int64_t>(object, name, H5T_INTEGER, H5T_NATIVE_INT64, "integers");
}

// --- Dataset ---

Dataset::Dataset(const File* file, std::string name, Handle handle)
    : file_(file), name_(std::move(name)), handle_(std::move(handle)) {
  const Lock lock;
  // Raw chunk reads apply when every chunk is one whole row and no filter transforms it.
  Handle props(H5Dget_create_plist(handle_.id()), H5Pclose);
  if (!props.valid() || H5Pget_layout(props.id()) != H5D_CHUNKED ||
      H5Pget_nfilters(props.id()) != 0)
    return;
  const auto d = dims();
  std::vector<hsize_t> chunk(d.size(), 0);
  if (d.empty() ||
      H5Pget_chunk(props.id(), static_cast<int>(d.size()), chunk.data()) !=
          static_cast<int>(d.size()) ||
      chunk[0] != 1)
    return;
  Handle stored(H5Dget_type(handle_.id()), H5Tclose);
  Handle native(H5Tget_native_type(stored.id(), H5T_DIR_ASCEND), H5Tclose);
  if (!native.valid() || H5Tequal(stored.id(), native.id()) <= 0) return;  // byte order differs
  std::size_t bytes = H5Tget_size(native.id());
  for (std::size_t i = 1; i < d.size(); ++i) {
    if (chunk[i] != d[i]) return;
    bytes *= d[i];
  }
  row_type_ = std::move(native);
  row_bytes_ = bytes;
}

Dataset Dataset::create(File& file, const std::string& name, hid_t type,
                        const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                        bool extendible) {
  const Lock lock;
  std::vector<hsize_t> max = dims;
  if (extendible) max[0] = H5S_UNLIMITED;
  Handle space(dims.empty()
                   ? H5Screate(H5S_SCALAR)
                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max.data()),
               H5Sclose);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!chunk.empty()) H5Pset_chunk(props.id(), static_cast<int>(chunk.size()), chunk.data());
  errno = 0;
  Handle ds(
      H5Dcreate2(file.id(), name.c_str(), type, space.id(), H5P_DEFAULT, props.id(), H5P_DEFAULT),
      H5Dclose);
  if (!ds.valid()) file.failWrite(name, "cannot create dataset", errno);
  return Dataset(&file, name, std::move(ds));
}

Dataset Dataset::open(const File& file, const std::string& name) {
  const Lock lock;
  if (!file.exists(name))
    file.fail(name, "missing dataset; the file is incomplete or not a gemel dataset");
  Handle ds(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) file.fail(name, "cannot open dataset");
  Dataset d(&file, name, std::move(ds));
  d.checkStored();
  return d;
}

void Dataset::checkStored() const {
  const Lock lock;
  // Unfiltered data is stored in full (gemel writes every row): a shape that its stored bytes
  // do not cover is a damaged or altered file, caught before a reader sizes buffers from it.
  Handle props(H5Dget_create_plist(handle_.id()), H5Pclose);
  if (!props.valid() || H5Pget_nfilters(props.id()) != 0) return;
  Handle type(H5Dget_type(handle_.id()), H5Tclose);
  hsize_t need = type.valid() ? H5Tget_size(type.id()) : 0;
  std::string shape;
  for (const auto d : dims()) {
    shape += (shape.empty() ? "" : ",") + std::to_string(d);
    if (need != 0 && __builtin_mul_overflow(need, d, &need)) need = ~hsize_t{0};
  }
  const hsize_t stored = H5Dget_storage_size(handle_.id());
  if (stored < need)
    file_->fail(name_, format("holds {} bytes, fewer than its shape [{}] needs; the file is "
                              "truncated or was altered",
                              stored, shape));
}

std::vector<hsize_t> Dataset::dims() const {
  const Lock lock;
  Handle space(H5Dget_space(handle_.id()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> d(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space.id(), d.data(), nullptr);
  return d;
}

bool Dataset::hasType(hid_t native) const {
  const Lock lock;
  Handle t(H5Dget_type(handle_.id()), H5Tclose);
  Handle n(H5Tget_native_type(t.id(), H5T_DIR_ASCEND), H5Tclose);
  return H5Tequal(n.id(), native) > 0;
}

void Dataset::extend(hsize_t first_dim) {
  const Lock lock;
  auto d = dims();
  d[0] = first_dim;
  errno = 0;
  if (H5Dset_extent(handle_.id(), d.data()) < 0)
    file_->failWrite(name_, "cannot extend dataset", errno);
}

std::vector<hsize_t> Dataset::checkRows(hsize_t start, hsize_t count) const {
  const Lock lock;
  auto d = dims();
  if (d.empty() || start + count > d[0]) {
    file_->fail(name_, "rows " + std::to_string(start) + ".." + std::to_string(start + count) +
                           " are out of range (" + std::to_string(d.empty() ? 0 : d[0]) + " rows)");
  }
  return d;
}

Handle Dataset::selectRows(hsize_t start, hsize_t count, Handle& memspace) const {
  const Lock lock;
  const auto d = checkRows(start, count);
  Handle space(H5Dget_space(handle_.id()), H5Sclose);
  std::vector<hsize_t> offset(d.size(), 0), extent = d;
  offset[0] = start;
  extent[0] = count;
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr);
  memspace =
      Handle(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  return space;
}

void Dataset::readRows(hsize_t start, hsize_t count, hid_t mem_type, void* buffer) const {
  const Lock lock;
  if (count == 0) return;
  if (row_bytes_ > 0 && H5Tequal(row_type_.id(), mem_type) > 0) {
    const auto d = checkRows(start, count);
    std::vector<hsize_t> offset(d.size(), 0);
    auto* out = static_cast<unsigned char*>(buffer);
    for (hsize_t row = start; row < start + count; ++row) {
      offset[0] = row;
      uint32_t filters = 0;
      if (H5Dread_chunk(handle_.id(), H5P_DEFAULT, offset.data(), &filters, out) < 0) {
        file_->fail(name_,
                    "cannot read row " + std::to_string(row) + " (corrupt or truncated file?)");
      }
      out += row_bytes_;
    }
    return;
  }
  Handle memspace;
  auto space = selectRows(start, count, memspace);
  if (H5Dread(handle_.id(), mem_type, memspace.id(), space.id(), H5P_DEFAULT, buffer) < 0) {
    file_->fail(name_, "cannot read rows " + std::to_string(start) + ".." +
                           std::to_string(start + count) + " (corrupt or truncated file?)");
  }
}

void Dataset::writeRows(hsize_t start, hsize_t count, hid_t mem_type, const void* buffer) {
  const Lock lock;
  if (count == 0) return;
  Handle memspace;
  auto space = selectRows(start, count, memspace);
  errno = 0;
  if (H5Dwrite(handle_.id(), mem_type, memspace.id(), space.id(), H5P_DEFAULT, buffer) < 0) {
    file_->failWrite(name_, "cannot write rows", errno);
  }
}

void Dataset::writeAll(hid_t mem_type, const void* buffer) {
  const Lock lock;
  errno = 0;
  if (H5Dwrite(handle_.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) < 0)
    file_->failWrite(name_, "cannot write dataset", errno);
}

void Dataset::readAll(hid_t mem_type, void* buffer) const {
  const Lock lock;
  if (H5Dread(handle_.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer) < 0) {
    file_->fail(name_, "cannot read dataset (corrupt or truncated file?)");
  }
}

}  // namespace gemel::h5
