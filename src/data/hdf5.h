#pragma once
// Internal to the data and io modules (no public header includes HDF5's): the HDF5 C API,
// wrapped once (as HighFive does): RAII handles, and every failing call turned into an
// InputError (reads) or OutputError (writes) that names the file, the object and the call.
// Every call runs under one process-wide lock, so threads may share the wrapper even on a
// serial (not thread-safe) HDF5 build.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gemel::h5 {

// An owned hid_t, closed with the matching H5*close on destruction.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Closes now and returns the H5*close result (reset() ignores it).
  herr_t close();

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Silences HDF5's own error printing (we report errors ourselves); idempotent.
void quietErrors();

// The HDF5 library loaded at run time ("1.10.8"), and whether it is thread-safe.
std::string libraryVersion();
bool libraryThreadSafe();

class File {
 public:
  // Creates (truncating) a file for writing, in HDF5's 1.10 format (checksummed metadata;
  // h5py reads it). Errors name `shown_as` when given: the target a temporary file will be
  // renamed to.
  static File create(const std::string& path, const std::string& shown_as = "");
  // Opens an existing file; throws InputError if it is missing or not HDF5. `remedy` ends
  // every error about the file (its opening and each missing or malformed object): what the
  // user should do, e.g. "rebuild it with gemel-data".
  //
  // Only HDF5's 1.10 file format (superblock version 2 or 3, "OHDR" object headers) is read,
  // the format File::create writes: its metadata is checksummed, so libhdf5 (whose 1.10.8
  // decoders overflow on damaged metadata) verifies every header before it decodes it. The
  // superblock and, before each object is opened, its header signature are checked here,
  // without libhdf5; the global heap, which has no checksum, is read by gemel (global_heap.h).
  static File open(const std::string& path, bool writable = false,
                   const std::string& remedy = "rebuild it");

  const std::string& path() const { return path_; }
  hid_t id() const { return handle_.id(); }
  bool exists(const std::string& object) const;  // "/train/images"
  void createGroup(const std::string& name);
  // Flushes and closes; a failure (a full disk) is an OutputError. Files that were written
  // must be closed with it before they are committed.
  void close();

  // Attributes on an object ("/" for the root).
  void setAttr(const std::string& object, const std::string& name, const std::string& value);
  void setAttr(const std::string& object, const std::string& name, int64_t value);
  void setAttr(const std::string& object, const std::string& name, double value);
  void setAttr(const std::string& object, const std::string& name,
               const std::vector<std::string>& values);
  void setAttr(const std::string& object, const std::string& name,
               const std::vector<double>& values);
  void setAttr(const std::string& object, const std::string& name,
               const std::vector<int64_t>& values);
  bool hasAttr(const std::string& object, const std::string& name) const;
  std::string attrString(const std::string& object, const std::string& name) const;
  int64_t attrInt(const std::string& object, const std::string& name) const;
  double attrDouble(const std::string& object, const std::string& name) const;
  std::vector<std::string> attrStrings(const std::string& object, const std::string& name) const;
  std::vector<double> attrDoubles(const std::string& object, const std::string& name) const;
  std::vector<int64_t> attrInts(const std::string& object, const std::string& name) const;
  // Names of a group's members, sorted.
  std::vector<std::string> children(const std::string& group) const;

  // [[noreturn]] helper: "file: what (object); remedy" as an InputError.
  [[noreturn]] void fail(const std::string& object, const std::string& what) const;
  // The same for a failed write, as an OutputError with its cause (errno `err`, a full or
  // read-only file system).
  [[noreturn]] void failWrite(const std::string& object, const std::string& what, int err) const;

 private:
  File(std::string path, Handle handle) : path_(std::move(path)), handle_(std::move(handle)) {}
  Handle openObject(const std::string& object) const;
  // A one-dimensional numeric attribute, shared by setAttr and attrDoubles / attrInts of lists:
  // written as `type`; read when its class is `type_class`, as `memory_type` (defined and used
  // in hdf5.cpp only).
  void setListAttr(const std::string& object, const std::string& name, hid_t type, const void* data,
                   std::size_t n);
  template <typename T>
  std::vector<T> listAttr(const std::string& object, const std::string& name, int type_class,
                          hid_t memory_type, const char* what) const;
  // For files opened to read: the link `object` is a hard link to an "OHDR" object header.
  void verifyHeader(const std::string& object) const;
  std::string path_;
  Handle handle_;
  std::string remedy_;
  bool verify_ = false;     // opened to read: every object's header is checked first
  std::uint64_t base_ = 0;  // the superblock's base address (file offset of address 0)
  mutable std::vector<std::uint64_t> verified_;  // header addresses already checked
};

// An n-dimensional dataset of a fixed element type.
class Dataset {
 public:
  // Creates a dataset whose first dimension can grow; chunks of `chunk` elements.
  static Dataset create(File& file, const std::string& name, hid_t type,
                        const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                        bool extendible);
  static Dataset open(const File& file, const std::string& name);

  std::vector<hsize_t> dims() const;
  bool hasType(hid_t native) const;  // stored type equals `native`
  void extend(hsize_t first_dim);
  // Reads/writes rows [start, start + count) of the first dimension; `buffer` holds them all.
  // A dataset stored as unfiltered one-row chunks (gemel's image layout) is read chunk by chunk
  // with H5Dread_chunk, which skips the chunk cache and the selection machinery: about 20x
  // faster than a hyperslab read for 224x224 images.
  void readRows(hsize_t start, hsize_t count, hid_t mem_type, void* buffer) const;
  void writeRows(hsize_t start, hsize_t count, hid_t mem_type, const void* buffer);
  // Writes the whole dataset (any rank, scalars included).
  void writeAll(hid_t mem_type, const void* buffer);
  // Reads the whole dataset.
  void readAll(hid_t mem_type, void* buffer) const;
  const std::string& name() const { return name_; }

 private:
  Dataset(const File* file, std::string name, Handle handle);
  // The stored bytes cover the shape (unfiltered datasets); an InputError if not.
  void checkStored() const;
  std::vector<hsize_t> checkRows(hsize_t start, hsize_t count) const;  // returns dims()
  Handle selectRows(hsize_t start, hsize_t count, Handle& memspace) const;
  const File* file_;
  std::string name_;
  Handle handle_;
  Handle row_type_;  // native stored type, when rows can be read as raw chunks
  std::size_t row_bytes_ = 0;
};

}  // namespace gemel::h5
