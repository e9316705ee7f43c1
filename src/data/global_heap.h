#pragma once
// Variable-length string attributes, read without libhdf5's global heap code.
//
// HDF5 stores a variable-length string as a descriptor (length, collection address, object
// index) in the attribute and its characters in a global heap collection. HDF5 1.10 (Debian
// 12's) parses collections without bounds checks: a corrupt one overflows the heap or loops
// forever (found by tests/fuzz). So gemel asks libhdf5 only for the descriptors, through a
// conversion to an opaque type that copies their bytes, and reads each collection itself,
// checking every size against the collection and the file. Called with the HDF5 lock held.
#include <hdf5.h>

#include <string>
#include <vector>

namespace gemel::h5 {

class File;

// The `count` strings of variable-length string attribute `attr` (named `name` on `object`,
// for errors) of `file`. Corrupt descriptors or collections are an InputError via file.fail.
std::vector<std::string> readVariableStrings(const File& file, hid_t attr, std::size_t count,
                                             const std::string& object, const std::string& name);

}  // namespace gemel::h5
