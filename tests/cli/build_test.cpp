// The build itself: the GPU build is the build. A build that lost LibTorch's CUDA or NCCL, or
// an executable that no longer links them, fails here even on a machine without a GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include "gemel/dist/communicator.h"
#include "test_support.h"

namespace gemel {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;

#define GEMEL_SKIP_UNLESS_CUDA_BUILD()                                                        \
  if (!GEMEL_EXPECT_CUDA)                                                                     \
  GTEST_SKIP() << "configured with -DGEMEL_EXPECT_CUDA=OFF: a CPU-only build, CUDA and NCCL " \
                  "not required"

TEST(BuildInfo, LibTorchCudaAndNcclAreCompiledIn) {
  GEMEL_SKIP_UNLESS_CUDA_BUILD();
  // Throws when libtorch_cuda is not part of the process (CPU LibTorch, or dropped at link).
  long cudart = 0;
  EXPECT_NO_THROW(cudart = at::detail::getCUDAHooks().versionCUDART());
  EXPECT_GE(cudart, 12000) << "LibTorch built for CUDA " << cudart;
  EXPECT_TRUE(dist::haveNccl()) << "gemel was built without the NCCL backend";
}

TEST(BuildInfo, TheGemelExecutableLinksLibTorchCudaAndNccl) {
  GEMEL_SKIP_UNLESS_CUDA_BUILD();
  const auto ldd = run("ldd " + shellQuote(GEMEL_BINARY));
  ASSERT_EQ(ldd.exit_code, 0) << ldd.output;
  EXPECT_NE(ldd.output.find("libtorch_cuda.so =>"), std::string::npos) << ldd.output;
  EXPECT_NE(ldd.output.find("libnccl.so"), std::string::npos) << ldd.output;
  EXPECT_EQ(ldd.output.find("not found"), std::string::npos) << ldd.output;
  const auto v = run(shellQuote(GEMEL_BINARY) + " version --json");
  ASSERT_EQ(v.exit_code, 0) << v.output;
  EXPECT_NE(v.output.find("\"nccl_backend\":true"), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("\"libtorch_cuda\":true"), std::string::npos) << v.output;
}

TEST(BuildInfo, VersionReportsWhatWasCompiledInAndWhatRunsNow) {
  const auto text = run(shellQuote(GEMEL_BINARY) + " version");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  for (const char* component : {"LibTorch", "CUDA", "cuDNN", "NCCL", "MPI", "HDF5", "OpenCV"}) {
    EXPECT_NE(text.output.find(std::string("\n  ") + component + " "), std::string::npos)
        << component << "\n"
        << text.output;
  }
  EXPECT_NE(text.output.find(std::string(" ") + TORCH_VERSION), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("CUDA devices:  " + std::to_string(torch::cuda::device_count())),
            std::string::npos)
      << text.output;
  EXPECT_NE(text.output.find("not launched by an MPI launcher (1 rank)"), std::string::npos)
      << text.output;
  // --version is the same report; gemel-data has it too.
  const auto dashed = run(shellQuote(GEMEL_BINARY) + " --version");
  EXPECT_EQ(dashed.output, text.output);
  const auto data = run(shellQuote(GEMEL_DATA_BINARY) + " --version");
  EXPECT_EQ(data.exit_code, 0) << data.output;
  EXPECT_EQ(data.output, text.output);
  // Under mpirun: MPI initialised, two ranks reported, one report (rank 0 speaks).
  const auto mpi = run("timeout 120 mpirun -np 2 --oversubscribe --allow-run-as-root " +
                       shellQuote(GEMEL_BINARY) + " version --json");
  ASSERT_EQ(mpi.exit_code, 0) << mpi.output;
  EXPECT_NE(mpi.output.find("\"mpi_launched\":true,\"ranks\":2"), std::string::npos) << mpi.output;
  EXPECT_EQ(mpi.output.find("\"gemel\""), mpi.output.rfind("\"gemel\"")) << mpi.output;
}

}  // namespace
}  // namespace gemel
