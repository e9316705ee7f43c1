// gemel bench-sync: GradSync's effective bandwidth against a raw MPI_Allreduce of the same bytes.
// Run under mpirun (launch/gemel-mpirun -np 2 -- bench-sync).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/core/error.h"
#include "gemel/dist/cluster.h"
#include "gemel/dist/communicator.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/models/zoo.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::cli {

int runBenchSync(const Args& args) {
  po::options_description desc("bench-sync options");
  desc.add_options()("arch", po::value<std::string>()->default_value("resnet18"),
                     "whose parameters to synchronise (their shapes and count)")(
      "repeat", po::value<int>()->default_value(20), "reductions timed")(
      "bucket-mb", po::value<double>()->default_value(25), "GradSync bucket size (MiB)");
  po::variables_map vm;
  if (!parseCommandLine("bench-sync", "[--arch A] [--repeat N]", desc, args, vm)) return 0;
  auto& cluster = dist::Cluster::init();
  GEMEL_THROW_IF_NOT(cluster.distributed(), UsageError,
                     "bench-sync measures collectives: run it under mpirun with 2 or more ranks, "
                     "e.g. launch/gemel-mpirun -np 2 -- bench-sync");
  torch::set_num_threads(1);
  auto model = models::createZooModel(vm["arch"].as<std::string>(), 10);
  std::vector<int> all(cluster.size());
  for (int r = 0; r < cluster.size(); ++r) all[r] = r;
  dist::CommunicatorCache comms(dist::Backend::kMpi, torch::kCPU);
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
  cluster.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) sync.reduceGradients();
  const double ours =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeat;
  const double raw = dist::timeRawAllreduce(floats, repeat);
  const double raw_pieces = dist::timeRawAllreduce(floats, repeat, bucket / 4);
  if (cluster.rank() == 0) {
    const double mb = floats * 4.0 / (1 << 20);
    std::printf("%d ranks, %s: %zu tensors, %.1f MiB of gradients, %zu buckets of <= %.0f MiB\n",
                cluster.size(), vm["arch"].as<std::string>().c_str(), entries.size(), mb,
                sync.buckets(), bucket / double(1 << 20));
    std::printf("  raw MPI_Allreduce (one buffer): %8.2f ms  %8.1f MiB/s\n", raw * 1e3, mb / raw);
    std::printf("  raw MPI_Allreduce (bucket-sized pieces): %8.2f ms  %8.1f MiB/s\n",
                raw_pieces * 1e3, mb / raw_pieces);
    std::printf(
        "  GradSync.reduceGradients:       %8.2f ms  %8.1f MiB/s  (%.0f%% of raw one-buffer, "
        "%.0f%% of raw pieces)\n",
        ours * 1e3, mb / ours, 100.0 * raw / ours, 100.0 * raw_pieces / ours);
  }
  return 0;
}

}  // namespace gemel::cli
