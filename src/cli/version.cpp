// gemel version (and --version): what users paste into bug reports. What was compiled in, and
// what this process finds at run time (LibTorch's CUDA, driver, devices, NCCL, MPI, ranks).
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cstdio>
#include <iostream>

#include "gemel/build_config.h"
#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/core/format.h"
#include "gemel/core/json.h"
#include "gemel/data/sources.h"
#include "gemel/dist/cluster.h"  // launchedByMpi
#include "gemel/dist/communicator.h"
#include "gemel/dist/platform.h"
#include "gemel/dist/world.h"
#include "gemel/io/hdf5_library.h"

namespace gemel::cli {

extern const char* const kCommit;  // generated at build time (cmake/GemelCommit.cmake)

namespace {

struct Row {
  const char* component;
  std::string compiled;  // "" when not built in
  std::string found;     // at run time; "" when not found
};

struct Report {
  std::vector<Row> rows;
  dist::Platform platform;
  bool hdf5_threadsafe = false;
  bool mpi_launched = false;
  int rank = 0, ranks = 1, local_ranks = 1;
  ThreadChoice threads;
};

std::string orNone(const std::string& s) { return s.empty() ? "-" : s; }

std::string cudaVersionText(int v) {
  return v > 0 ? format("{}.{}", v / 1000, (v % 1000) / 10) : "";
}

Report collect(const ThreadChoice& threads, const dist::World& world) {
  Report r;
  r.platform = dist::probePlatform();
  const auto& p = r.platform;
  const std::string torch_compiled =
      std::string(GEMEL_BUILT_TORCH) + (std::string(GEMEL_BUILT_TORCH_CUDA).empty()
                                            ? " (CPU)"
                                            : " (CUDA " GEMEL_BUILT_TORCH_CUDA ")");
  const std::string torch_found =
      std::string(TORCH_VERSION) +
      (p.torch_cuda ? " (CUDA " + p.torch_cuda_version + ")" : " (CPU)");
  const std::string driver = p.cuda_driver > 0 ? "driver " + cudaVersionText(p.cuda_driver)
                             : p.torch_cuda    ? "no driver"
                                               : "";
  r.rows = {
      {"LibTorch", torch_compiled, torch_found},
      {"CUDA", GEMEL_BUILT_CUDA, driver},
      {"cuDNN", GEMEL_BUILT_CUDNN, p.cudnn_version},
      {"NCCL", GEMEL_BUILT_NCCL, p.nccl_version},
      {"MPI", GEMEL_BUILT_MPI, p.mpi_library},
      {"HDF5", GEMEL_BUILT_HDF5, io::hdf5LibraryVersion()},
      {"OpenCV", GEMEL_BUILT_OPENCV, data::openCVVersion()},
  };
  r.hdf5_threadsafe = io::hdf5LibraryThreadSafe();
  r.mpi_launched = dist::launchedByMpi();
  r.rank = world.rank();
  r.ranks = world.size();
  r.local_ranks = world.localSize();
  r.threads = threads;
  return r;
}

void printText(const Report& r) {
  std::printf("gemel %s (commit %s), %s build, %s\n\n", GEMEL_VERSION, kCommit, GEMEL_BUILD_TYPE,
              GEMEL_BUILT_COMPILER);
  std::printf("  %-10s %-28s %s\n", "", "compiled in", "found at run time");
  for (const auto& row : r.rows) {
    std::printf("  %-10s %-28s %s\n", row.component, orNone(row.compiled).c_str(),
                orNone(row.found).c_str());
  }
  const auto& p = r.platform;
  std::printf("\nLibTorch:      %s\n", GEMEL_BUILT_TORCH_DIR);
  std::printf("CUDA devices:  %zu", p.devices.size());
  if (p.devices.empty()) std::printf(" (%s)", p.cuda_note.c_str());
  std::printf("\n");
  for (const auto& d : p.devices) {
    std::printf("  cuda:%d  %s, %.1f GiB, compute capability %d.%d\n", d.index, d.name.c_str(),
                d.memory_bytes / 1073741824.0, d.capability_major, d.capability_minor);
  }
  if (r.mpi_launched) {
    std::printf("MPI:           launched by an MPI launcher, %d ranks (%d on this node)\n", r.ranks,
                r.local_ranks);
  } else {
    std::printf("MPI:           not launched by an MPI launcher (1 rank)\n");
  }
  std::printf("backends:      single, mpi%s\n", dist::haveNccl() ? ", nccl" : " (nccl not built)");
  std::printf("CPU threads:   %d per rank (%s)\n", r.threads.threads, r.threads.why.c_str());
  std::printf("HDF5:          %s\n", r.hdf5_threadsafe ? "thread-safe build" : "serial build");
}

std::string versionJson(const Report& r) {
  JsonWriter j;
  j.beginObject();
  j.key("gemel").beginObject();
  j.key("version").value(GEMEL_VERSION).key("commit").value(kCommit);
  j.key("build_type").value(GEMEL_BUILD_TYPE).key("compiler").value(GEMEL_BUILT_COMPILER);
  j.endObject();
  j.key("compiled").beginObject();
  for (const auto& row : r.rows) j.key(row.component).value(row.compiled);
  j.key("libtorch_cuda").value(GEMEL_BUILT_TORCH_CUDA);
  j.key("libtorch_dir").value(GEMEL_BUILT_TORCH_DIR);
  j.key("nccl_backend").value(dist::haveNccl());
  j.endObject();
  const auto& p = r.platform;
  j.key("runtime").beginObject();
  for (const auto& row : r.rows) j.key(row.component).value(row.found);
  j.key("libtorch_cuda").value(p.torch_cuda);
  j.key("libtorch_cuda_version").value(p.torch_cuda_version);
  j.key("cuda_driver").value(cudaVersionText(p.cuda_driver));
  j.key("cuda_devices").beginArray();
  for (const auto& d : p.devices) {
    j.beginObject().key("index").value(d.index).key("name").value(d.name);
    j.key("memory_bytes").value(d.memory_bytes);
    j.key("capability").value(format("{}.{}", d.capability_major, d.capability_minor));
    j.endObject();
  }
  j.endArray();
  j.key("cuda_note").value(p.cuda_note);
  j.key("mpi_launched").value(r.mpi_launched);
  j.key("ranks").value(r.ranks).key("local_ranks").value(r.local_ranks);
  j.key("threads").value(r.threads.threads);
  j.key("threads_from").value(r.threads.why);
  j.key("hdf5_threadsafe").value(r.hdf5_threadsafe);
  j.endObject();
  return j.endObject().str();
}

}  // namespace

int runVersion(const Args& args, const dist::World& world) {
  po::options_description desc("options");
  desc.add_options()("json", po::bool_switch(), "print one JSON object");
  addThreadsOption(desc);
  po::variables_map vm;
  if (!parseCommandLine("version", "", desc, args, vm)) return 0;
  const auto report = collect(setupThreads(vm, world, true), world);
  // Every rank sees the same build; rank 0 speaks for the job.
  if (report.rank != 0) return 0;
  if (vm["json"].as<bool>()) {
    std::cout << versionJson(report) << "\n";
  } else {
    printText(report);
  }
  return 0;
}

}  // namespace gemel::cli
