// gemel inspect: the layers a workload's models can share and what sharing them would save.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/config/dump.h"
#include "gemel/config/parser.h"
#include "gemel/core/error.h"
#include "gemel/core/json.h"
#include "gemel/core/log.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/models/archs.h"
#include "gemel/models/zoo.h"

namespace gemel::cli {
namespace {

struct Inspected {
  std::string workload;
  std::vector<int> num_classes;  // per model
  merge::LayerCatalog catalog;
};

struct ArchModel {
  std::string name;  // the arch, with "_k" appended when the arch is given more than once
  std::string arch;
  int num_classes;
};

std::vector<ArchModel> namedArchSpecs(const std::vector<std::string>& specs) {
  std::vector<std::pair<std::string, int>> parsed;
  std::map<std::string, int> count;
  for (const auto& s : specs) {
    parsed.push_back(parseArchSpec(s));
    ++count[parsed.back().first];
  }
  std::map<std::string, int> seen;
  std::vector<ArchModel> out;
  for (const auto& [arch, classes] : parsed) {
    const int k = ++seen[arch];
    out.push_back({count[arch] > 1 ? arch + "_" + std::to_string(k) : arch, arch, classes});
  }
  return out;
}

void printTable(const Inspected& in, int top) {
  const auto& cat = in.catalog;
  std::printf("workload %s: %zu models\n\n", in.workload.c_str(), cat.models().size());
  int arch_width = 14;  // wider for long arch names, not for a darknet cfg's path
  for (const auto& model : cat.models()) {
    if (model.arch.rfind("darknet:", 0) != 0)
      arch_width = std::max(arch_width, static_cast<int>(model.arch.size()));
  }
  std::printf("  %-28s %-*s %8s %8s %12s\n", "model", arch_width, "arch", "classes", "layers",
              "weights");
  for (std::size_t m = 0; m < cat.models().size(); ++m) {
    const auto& model = cat.models()[m];
    std::printf("  %-28s %-*s %8d %8zu %12s\n", model.name.c_str(), arch_width, model.arch.c_str(),
                in.num_classes[m], model.layers.size(), formatBytes(model.total_bytes).c_str());
  }
  const double pct = cat.totalBytes() > 0 ? 100.0 * cat.savingsBytes() / cat.totalBytes() : 0.0;
  std::printf("\ntotal weight bytes:       %14lld  (%s)\n",
              static_cast<long long>(cat.totalBytes()), formatBytes(cat.totalBytes()).c_str());
  std::printf("sharing every shareable layer saves %lld bytes (%s, %.1f%% of the total)\n",
              static_cast<long long>(cat.savingsBytes()), formatBytes(cat.savingsBytes()).c_str(),
              pct);
  std::printf("\nshareable groups, largest first (%zu in all):\n", cat.groups().size());
  std::printf("  %4s %11s %5s  %-40s %s\n", "#", "saved", "inst", "models", "signature");
  const std::size_t shown =
      top > 0 ? std::min<std::size_t>(top, cat.groups().size()) : cat.groups().size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& g = cat.groups()[i];
    std::string models;
    for (const auto& n : cat.modelNames(g)) models += (models.empty() ? "" : ",") + n;
    if (models.size() > 40) models = models.substr(0, 37) + "...";
    std::printf("  %4d %11s %5zu  %-40s %s\n", g.id, formatBytes(g.bytes_saved).c_str(),
                g.instances.size(), models.c_str(), g.signature.c_str());
  }
  if (shown < cat.groups().size()) {
    std::printf("  ... %zu more groups (use --top 0 to list all)\n", cat.groups().size() - shown);
  }
}

void printJson(const Inspected& in) {
  const auto& cat = in.catalog;
  JsonWriter j;
  j.beginObject();
  j.key("workload").value(in.workload);
  j.key("total_bytes").value(cat.totalBytes());
  j.key("savings_bytes").value(cat.savingsBytes());
  j.key("savings_fraction")
      .value(cat.totalBytes() > 0 ? double(cat.savingsBytes()) / cat.totalBytes() : 0.0);
  j.key("models").beginArray();
  for (std::size_t m = 0; m < cat.models().size(); ++m) {
    const auto& model = cat.models()[m];
    j.beginObject();
    j.key("name").value(model.name).key("arch").value(model.arch);
    j.key("num_classes").value(in.num_classes[m]);
    j.key("layers").value(static_cast<int64_t>(model.layers.size()));
    j.key("bytes").value(model.total_bytes);
    j.endObject();
  }
  j.endArray();
  j.key("groups").beginArray();
  for (const auto& g : cat.groups()) {
    j.beginObject();
    j.key("id").value(g.id);
    j.key("signature").value(g.signature);
    j.key("kind").value(models::toString(g.kind));
    j.key("models").beginArray();
    for (const auto& n : cat.modelNames(g)) j.value(n);
    j.endArray();
    j.key("instances").beginArray();
    for (const auto& inst : g.instances) {
      j.beginArray();
      for (const auto& ref : inst.members) j.value(cat.models()[ref.model].name + ":" + ref.module);
      j.endArray();
    }
    j.endArray();
    j.key("layer_bytes").value(g.layer_bytes);
    j.key("bytes_saved").value(g.bytes_saved);
    j.endObject();
  }
  j.endArray();
  j.endObject();
  std::cout << j.str() << "\n";
}

}  // namespace

int runInspect(const Args& args, const dist::World& world) {
  po::options_description desc("inspect options");
  desc.add_options()("config", po::value<std::string>(), "workload YAML file")(
      "arch", po::value<std::vector<std::string>>()->composing(),
      "a model ARCH[:num_classes] (repeatable; instead of --config)")(
      "datasets-dir", po::value<std::string>(), "override the workload's datasets_dir")(
      "dump-config", po::bool_switch(), "print the resolved workload configuration and exit")(
      "json", po::bool_switch(), "print one JSON object instead of the table")(
      "top", po::value<int>()->default_value(25), "groups to list in the table (0: all)");
  po::variables_map vm;
  if (!parseCommandLine("inspect", "(--config FILE | --arch ARCH[:N] ...) [options]", desc, args,
                        vm)) {
    return 0;
  }
  const bool has_config = vm.count("config") > 0;
  const bool has_arch = vm.count("arch") > 0;
  GEMEL_THROW_IF_NOT(has_config != has_arch, UsageError,
                     "give either --config FILE or one or more --arch ARCH[:N], not {}",
                     has_config ? "both" : "neither");
  GEMEL_THROW_IF_NOT(!vm["dump-config"].as<bool>() || has_config, UsageError,
                     "--dump-config needs --config FILE");

  std::vector<merge::CatalogModel> described;
  std::vector<int> classes;
  std::string workload_name;
  if (has_config) {
    config::LoadOptions options;
    if (vm.count("datasets-dir")) options.datasets_dir = vm["datasets-dir"].as<std::string>();
    const auto workload = config::loadWorkload(vm["config"].as<std::string>(), options);
    if (vm["dump-config"].as<bool>()) {
      std::cout << config::dumpWorkload(workload);
      return 0;
    }
    workload_name = workload.name;
    for (std::size_t i = 0; i < workload.tasks.size(); ++i) {
      const auto& task = workload.tasks[i];
      log::info("inspect", "building model {}/{}: {} ({}{})", i + 1, workload.tasks.size(),
                task.name, task.arch, task.weights.empty() ? "" : ", weights " + task.weights);
      const auto model = models::buildTaskModel(task);
      described.push_back(merge::describeModel(task.name, *model));
      classes.push_back(task.num_classes);
    }
  } else {
    const auto specs = namedArchSpecs(vm["arch"].as<std::vector<std::string>>());
    workload_name = "(command line)";
    for (const auto& spec : specs) {
      log::debug("inspect", "building {} ({} classes)", spec.name, spec.num_classes);
      const auto model = models::createZooModel(spec.arch, spec.num_classes);
      described.push_back(merge::describeModel(spec.name, *model));
      classes.push_back(spec.num_classes);
    }
  }
  Inspected in{workload_name, classes, merge::LayerCatalog(std::move(described))};
  if (vm["json"].as<bool>()) {
    printJson(in);
  } else {
    printTable(in, vm["top"].as<int>());
  }
  return 0;
}

}  // namespace gemel::cli
