// gemel bench-sync: GradSync's effective bandwidth against a raw MPI_Allreduce of the same bytes.
// Run under mpirun (launch/gemel-mpirun -np 2 -- bench-sync).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/core/error.h"
#include "gemel/dist/communicator.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/dist/world.h"
#include "gemel/models/zoo.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/task.h"

namespace gemel::cli {

namespace {

// Fills every gradient with rank + 1, reduces once, and counts the elements that are not
// 1 + 2 + ... + ranks (nccl-tests' #wrong): the check that the timed path sums correctly.
int64_t checkedReduction(dist::GradSync& sync, const std::vector<dist::SyncEntry>& entries,
                         int rank, int ranks) {
  torch::NoGradGuard no_grad;
  for (const auto& e : entries) e.tensor.mutable_grad().fill_(rank + 1);
  sync.reduceGradients();
  const double expect = ranks * (ranks + 1) / 2.0;
  int64_t wrong = 0;
  for (const auto& e : entries) wrong += e.tensor.grad().ne(expect).sum().item<int64_t>();
  return wrong;
}

}  // namespace

int runBenchSync(const Args& args, const dist::World& world) {
  po::options_description desc("bench-sync options");
  desc.add_options()("arch", po::value<std::string>()->default_value("resnet18"),
                     "whose parameters to synchronise (their shapes and count)")(
      "repeat", po::value<int>()->default_value(20), "reductions timed")(
      "bucket-mb", po::value<double>()->default_value(25), "GradSync bucket size (MiB)")(
      "device", po::value<std::string>()->default_value("cpu"),
      "where the gradients live: cpu, or cuda (each rank its local GPU)")(
      "backend", po::value<std::string>()->default_value("mpi"),
      "mpi (CUDA tensors staged through host memory unless the MPI is CUDA-aware) or nccl");
  po::variables_map vm;
  if (!parseCommandLine("bench-sync", "[--arch A] [--repeat N] [--device cpu|cuda] [--backend B]",
                        desc, args, vm))
    return 0;
  GEMEL_THROW_IF_NOT(world.size() > 1, UsageError,
                     "bench-sync measures collectives: run it under mpirun with 2 or more ranks, "
                     "e.g. launch/gemel-mpirun -np 2 -- bench-sync");
  const auto device_name = vm["device"].as<std::string>();
  GEMEL_THROW_IF_NOT(device_name == "cpu" || device_name == "cuda", UsageError,
                     "--device '{}': expected cpu or cuda", device_name);
  const torch::Device device =
      device_name == "cpu" ? torch::Device(torch::kCPU) : train::defaultDevice(world.localRank());
  GEMEL_THROW_IF_NOT(device_name == "cpu" || device.is_cuda(), UsageError,
                     "--device cuda: no CUDA device is visible on this machine");
  const auto backend = dist::parseBackend(vm["backend"].as<std::string>());
  GEMEL_THROW_IF_NOT(backend == dist::Backend::kMpi || backend == dist::Backend::kNccl, UsageError,
                     "--backend: bench-sync measures mpi or nccl");
  torch::set_num_threads(1);
  auto model = models::createZooModel(vm["arch"].as<std::string>(), 10);
  model->to(device);
  std::vector<int> all(world.size());
  for (int r = 0; r < world.size(); ++r) all[r] = r;
  dist::CommunicatorCache comms(world, dist::resolveBackend(backend, device, world), device);
  comms.prepare({all});
  std::vector<dist::SyncEntry> entries;
  int64_t floats = 0;
  for (const auto& [name, p] : model->namedParameters()) {
    p.mutable_grad() = torch::ones_like(p);
    entries.push_back({name, p, all});
    floats += p.numel();
  }
  const auto bucket = static_cast<int64_t>(vm["bucket-mb"].as<double>() * (1 << 20));
  dist::GradSync sync(comms, entries, bucket, /*views=*/true);
  const int repeat = vm["repeat"].as<int>();
  sync.reduceGradients();  // warm-up
  world.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) sync.reduceGradients();
  if (device.is_cuda()) torch::cuda::synchronize();
  const double ours =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeat;
  const double raw = dist::timeRawAllreduce(floats, repeat);
  const double raw_pieces = dist::timeRawAllreduce(floats, repeat, bucket / 4);
  std::vector<int64_t> wrong = {checkedReduction(sync, entries, world.rank(), world.size())};
  world.sum(wrong);
  if (world.lead()) {
    const double mb = floats * 4.0 / (1 << 20);
    std::printf(
        "%d ranks, %s on %s, %s backend: %zu tensors, %.1f MiB of gradients, %zu buckets of "
        "<= %.0f MiB\n",
        world.size(), vm["arch"].as<std::string>().c_str(), device.str().c_str(),
        dist::toString(comms.backend()).c_str(), entries.size(), mb, sync.buckets(),
        bucket / double(1 << 20));
    std::printf("  raw MPI_Allreduce (one host buffer): %8.2f ms  %8.1f MiB/s\n", raw * 1e3,
                mb / raw);
    std::printf("  raw MPI_Allreduce (bucket-sized pieces): %8.2f ms  %8.1f MiB/s\n",
                raw_pieces * 1e3, mb / raw_pieces);
    std::printf(
        "  GradSync.reduceGradients:       %8.2f ms  %8.1f MiB/s  (%.0f%% of raw one-buffer, "
        "%.0f%% of raw pieces)\n",
        ours * 1e3, mb / ours, 100.0 * raw / ours, 100.0 * raw_pieces / ours);
    std::printf("  #wrong: %lld of %lld elements after a checked reduction\n",
                static_cast<long long>(wrong[0]), static_cast<long long>(floats * world.size()));
  }
  if (wrong[0] != 0) {
    throw Error(format("bench-sync: {} reduced gradient elements are wrong", wrong[0]),
                ExitCode::kInternal);
  }
  return 0;
}

}  // namespace gemel::cli
