#include "gemel/io/hdf5_library.h"

#include "data/hdf5.h"  // internal to data and io

namespace gemel::io {

std::string hdf5LibraryVersion() { return h5::libraryVersion(); }
bool hdf5LibraryThreadSafe() { return h5::libraryThreadSafe(); }

}  // namespace gemel::io
