#pragma once
// The HDF5 library gemel runs with, for the version report (without HDF5's headers).
#include <string>

namespace gemel::io {

std::string hdf5LibraryVersion();  // "1.10.8", as loaded at run time
bool hdf5LibraryThreadSafe();

}  // namespace gemel::io
