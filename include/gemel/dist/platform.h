#pragma once
// What this process finds at run time, for `gemel version` and bug reports: LibTorch's CUDA
// (built in or not, and for which CUDA), the driver and the visible devices, cuDNN, NCCL and
// the MPI library. Queries only: no MPI or NCCL communicator is made, and on a machine without
// a GPU nothing is touched beyond asking the CUDA runtime for its device count.
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::dist {

struct CudaDevice {
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;
  int capability_major = 0, capability_minor = 0;
};

struct Platform {
  bool torch_cuda = false;         // LibTorch's CUDA library (libtorch_cuda) is linked in
  std::string torch_cuda_version;  // the CUDA runtime LibTorch was built with ("13.0")
  std::string cudnn_version;       // the cuDNN loaded at run time ("9.19.0"); "" without
  int cuda_driver = 0;             // the driver's CUDA version (13000), 0 when no driver
  std::vector<CudaDevice> devices;
  std::string cuda_note;     // why no device is visible, when none is
  std::string nccl_version;  // the NCCL loaded at run time ("2.28.9"); "" when not built
  std::string mpi_library;   // MPI_Get_library_version's first line
};

// Probes the platform. Safe before MPI_Init and without a GPU or a driver.
Platform probePlatform();

}  // namespace gemel::dist
