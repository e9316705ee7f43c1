#include "gemel/dist/platform.h"
#include "gemel/features.h"

#include "mpi_check.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>

#include "gemel/core/format.h"

#ifdef GEMEL_HAVE_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#endif
#ifdef GEMEL_HAVE_NCCL
#include <nccl.h>
#endif

namespace gemel::dist {
namespace {

// 91900 -> "9.19.0" (cuDNN 9 packs major*10000 + minor*100 + patch).
std::string cudnnText(long v) {
  return v >= 90000 ? format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
                    : format("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100);
}

void probeCuda(Platform& p) {
  const auto& hooks = at::detail::getCUDAHooks();
  try {
    // Throws when libtorch_cuda is not linked in (a CPU-only LibTorch or a lost library).
    const long v = hooks.versionCUDART();
    p.torch_cuda = true;
    p.torch_cuda_version = format("{}.{}", v / 1000, (v % 1000) / 10);
  } catch (const c10::Error&) {
    p.cuda_note = "LibTorch without CUDA";
    return;
  }
  try {
    p.cudnn_version = cudnnText(hooks.versionRuntimeCuDNN());
  } catch (const c10::Error&) {
  }
#ifdef GEMEL_HAVE_CUDA_RUNTIME
  int driver = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess) p.cuda_driver = driver;
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    p.cuda_note = driver == 0 ? "no NVIDIA driver on this machine"
                              : std::string("cudaGetDeviceCount: ") + cudaGetErrorString(rc);
    cudaGetLastError();  // clear it: LibTorch asks again later
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    p.devices.push_back(
        {i, prop.name, static_cast<int64_t>(prop.totalGlobalMem), prop.major, prop.minor});
  }
  if (count == 0) p.cuda_note = "no CUDA device visible";
#else
  p.cuda_note = "gemel was built without the CUDA runtime headers";
#endif
}

}  // namespace

Platform probePlatform() {
  Platform p;
  probeCuda(p);
#ifdef GEMEL_HAVE_NCCL
  int v = 0;
  if (ncclGetVersion(&v) == ncclSuccess) {
    p.nccl_version = format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
  }
#endif
  // Allowed before MPI_Init and after MPI_Finalize.
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  try {
    GEMEL_MPI(MPI_Get_library_version(text, &len));
    std::string s(text, static_cast<std::size_t>(len));
    const auto cut = s.find_first_of("\n,");
    p.mpi_library = s.substr(0, cut);
  } catch (const CommError&) {
    // The report shows no MPI library; nothing else depends on it.
  }
  return p;
}

}  // namespace gemel::dist
