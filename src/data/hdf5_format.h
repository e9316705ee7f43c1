#pragma once
// What gemel reads of HDF5's file format itself, without libhdf5: the superblock, object header
// signatures, and the global heap of variable-length strings. Internal to the data module.
//
// HDF5 stores a variable-length string as a descriptor (length, collection address, object
// index) in the attribute and its characters in a global heap collection. HDF5 1.10 (Debian
// 12's) parses collections without bounds checks: a corrupt one overflows the heap or loops
// forever (found by tests/fuzz). So gemel asks libhdf5 only for the descriptors, through a
// conversion to an opaque type that copies their bytes, and reads each collection itself,
// checking every size against the collection and the file. Called with the HDF5 lock held.
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gemel::h5 {

class File;

// The superblock at the start of the file (or after a user block: offsets 512, 1024, ...).
// Versions 2 and 3 (HDF5 1.8 and 1.10 formats) are checksummed; 0 and 1 are not.
struct Superblock {
  int version = 0;
  bool complete = false;                   // versions 2, 3: the fields below were read
  std::uint64_t base = 0;                  // file offset of address 0
  std::uint64_t root = 0;                  // the root group's object header
  std::optional<std::uint64_t> extension;  // the superblock extension's object header
};
// Empty when the file has no HDF5 signature.
std::optional<Superblock> readSuperblock(const std::string& path);

// Whether `path` holds a version 2 object header ("OHDR", checksummed) at file offset `offset`.
bool objectHeaderAt(const std::string& path, std::uint64_t offset);

// Little-endian unsigned integer of `bytes` bytes (1 to 8), as HDF5 encodes them.
std::uint64_t decodeLittleEndian(const unsigned char* p, std::size_t bytes);

// The `count` strings of variable-length string attribute `attr` (named `name` on `object`,
// for errors) of `file`. Corrupt descriptors or collections are an InputError via file.fail.
std::vector<std::string> readVariableStrings(const File& file, hid_t attr, std::size_t count,
                                             const std::string& object, const std::string& name);

}  // namespace gemel::h5
