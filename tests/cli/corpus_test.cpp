// The malformed-input corpus: bad workloads, datasets, weights, results and profiles, and bad
// command lines, each given to the executables as a user would. Every case must end with one
// clear error (one "error:" line, naming the file, the key or object, and what to do), its own
// exit code, and no crash. The inputs are made from good ones in SetUpTestSuite: a dataset from
// Debian's Fashion-MNIST, a tiny merge's results.h5 and its profile, each altered by h5py.
// (tests/cli/cli_test.cpp holds the first twenty cases, about workloads and weights.)
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "cli_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::run;
using testing::shellQuote;
using testing::TempDir;
using testing::writeText;

// Each variant: a copy of a good file with one thing broken.
const char* kMakeVariants = R"PY(
import shutil, sys, zipfile
import h5py, numpy as np

def variant(src, name, fn):
    shutil.copy(src, name)
    with h5py.File(name, "r+", libver=("v110", "latest")) as f:
        fn(f)

def cut(src, name, keep):
    b = open(src, "rb").read()
    open(name, "wb").write(b[: int(len(b) * keep)])

ds = "good_CL.h5"
variant(ds, "badlabel_CL.h5", lambda f: f["val/labels"].__setitem__(3, 7))
variant(ds, "noval_CL.h5", lambda f: f.__delitem__("val"))
variant(ds, "wrongformat_CL.h5", lambda f: f.attrs.__setitem__("format", "something-else"))
variant(ds, "version9_CL.h5", lambda f: f.attrs.__setitem__("version", 9))
def few_labels(f):
    del f["train/labels"]
    f["train/labels"] = np.zeros(5, dtype=np.int64)
variant(ds, "fewlabels_CL.h5", few_labels)
def float_images(f):
    x = f["train/images"][()].astype(np.float32)
    del f["train/images"]
    f["train/images"] = x
variant(ds, "floatimages_CL.h5", float_images)
open("text_CL.h5", "w").write("not hdf5\n")
# The same dataset in HDF5's original format (h5py's default), which has no checksums.
with h5py.File(ds, "r") as a, h5py.File("oldformat_CL.h5", "w", libver="earliest") as b:
    for k, v in a.attrs.items():
        b.attrs[k] = v
    for k in a:
        a.copy(a[k], b, name=k)
cut(ds, "cut_CL.h5", 0.5)

res = "merged/results.h5"
variant(res, "r_format.h5", lambda f: f.attrs.__setitem__("format", "gemel-dataset"))
variant(res, "r_version.h5", lambda f: f.attrs.__setitem__("version", 99))
variant(res, "r_notasks.h5", lambda f: f.__delitem__("tasks"))
variant(res, "r_nomemory.h5", lambda f: f.__delitem__("memory"))
def wrong_shape(f):
    p = f["tasks/shoes_a_resnet18/params"]
    del p["fc.weight"]
    p["fc.weight"] = np.zeros((3, 3), dtype=np.float32)
variant(res, "r_shape.h5", wrong_shape)
def drop_shared(f):
    g = list(f["shared"])[0]
    del f["shared"][g]["weight"]
variant(res, "r_dropshared.h5", drop_shared)
variant(res, "r_badplan.h5", lambda f: f["search/state"].attrs.__setitem__("plan", "[[0,"))
variant(res, "r_arch.h5", lambda f: f["tasks/shoes_a_resnet18"].attrs.__setitem__("arch", "resnet51"))
variant(res, "r_kind.h5", lambda f: f["tasks/shoes_a_resnet18"].attrs.__setitem__("kind", "segmentation"))
cut(res, "r_cut.h5", 0.3)

prof = "P.h5"
variant(prof, "p_notask.h5", lambda f: f["tasks"].__delitem__("bags_b_resnet18"))
variant(prof, "p_batches.h5", lambda f: f["tasks/bags_b_resnet18"].__delitem__("latency_p95"))
variant(prof, "p_version.h5", lambda f: f.attrs.__setitem__("version", 7))

# A global heap collection ("GCOL", version, 3 reserved bytes, its size) holds the strings of
# the attributes; its first object (index, references, reserved, size) follows the header.
def heap(src, name, field_at):
    b = bytearray(open(src, "rb").read())
    at = b.find(b"GCOL")
    b[at + field_at : at + field_at + 8] = (1 << 62).to_bytes(8, "little")
    open(name, "wb").write(b)
heap(ds, "heapobject_CL.h5", 16 + 8)
heap(res, "r_heap.h5", 8)

open("empty.pt", "wb").close()
with zipfile.ZipFile("nopkl.pt", "w") as z:
    z.writestr("archive/version", "3")
open("rand.weights", "wb").write(np.random.default_rng(0).bytes(5000))
open("bad.cfg", "w").write("[net]\nwidth=64\n[convolutional]\nfilters=abc\n")
open("unknown.cfg", "w").write("[net]\nwidth=64\n[teleport]\nsize=3\n")
print("variants made")
)PY";

// The good inputs and their variants, made once per build and shared by every case's process.
bool makeCorpus(const std::string& dir) {
  testing::FashionWorkload w;
  w.header =
      "name: pair\n"
      "defaults: {batch_size: 32, accuracy_target: 0.1}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.05, max_trials: 1}\n";
  w.tasks = {{"shoes_a_resnet18", {5, 7, 9}}, {"bags_b_resnet18", {8, 1, 3}}};
  w.max_train = 64;
  w.max_val = 32;
  testing::writeFashionWorkload(dir, "pair.yaml", w);
  fs::copy_file(dir + "/shoes_a_CL.h5", dir + "/good_CL.h5");
  const auto in = "cd " + shellQuote(dir) + " && ";
  const auto gemel = shellQuote(GEMEL_BINARY);
  for (const auto& step :
       {in + gemel + " train --config pair.yaml --epochs 1 --out trained",
        in + gemel + " merge --config trained/pair.trained.yaml --out merged --fixed-steps 2",
        in + gemel +
            " profile --results merged/results.h5 --batch 1 --repeats 2 --load-repeats 1 --out "
            "P.h5",
        in + shellQuote(GEMEL_PYTHON) + " variants.py"}) {
    writeText(dir + "/variants.py", kMakeVariants);
    const auto r = run(step);
    EXPECT_EQ(r.exit_code, 0) << step << "\n" << r.output;
    if (r.exit_code != 0) return false;
  }
  return true;
}

struct Case {
  const char* name;
  const char* yaml;     // written as w.yaml first, unless empty
  const char* command;  // run in the corpus directory; "gemel" and "gemel-data" are the binaries
  int exit_code;
  std::vector<const char*> says;  // the file, the key or object, what to do
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MalformedInput : public ::testing::TestWithParam<Case> {};

TEST_P(MalformedInput, OneClearErrorAndItsExitCode) {
  const auto& c = GetParam();
  const auto shared = testing::sharedTestDir("corpus", GEMEL_BINARY, makeCorpus);
  ASSERT_FALSE(shared.empty()) << "making the corpus failed";
  // The case's own directory, seeing the shared files: what it writes stays its own.
  TempDir own;
  testing::linkEntries(shared, own.path());
  if (*c.yaml) writeText(own.file("w.yaml"), c.yaml);
  std::string command = c.command;
  command =
      std::regex_replace(command, std::regex("^gemel-data "), shellQuote(GEMEL_DATA_BINARY) + " ");
  command = std::regex_replace(command, std::regex("^gemel "), shellQuote(GEMEL_BINARY) + " ");
  const auto before =
      fs::exists(own.file("out")) ? fs::last_write_time(own.file("out")) : fs::file_time_type{};
  const auto r = run("cd " + shellQuote(own.path()) + " && " + command + " 2>&1");
  EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
  for (const char* s : c.says)
    EXPECT_NE(r.output.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.output;
  // One error line, and nothing that says the process crashed.
  std::size_t errors = 0;
  for (auto at = r.output.find("error:"); at != std::string::npos;
       at = r.output.find("error:", at + 1))
    ++errors;
  EXPECT_EQ(errors, 1u) << r.output;
  for (const char* crash :
       {"terminate called", "Assertion", "Segmentation", "Aborted", "internal error"})
    EXPECT_EQ(r.output.find(crash), std::string::npos) << crash << " in:\n" << r.output;
  // Nothing written in place of an output.
  const auto after =
      fs::exists(own.file("out")) ? fs::last_write_time(own.file("out")) : fs::file_time_type{};
  EXPECT_EQ(before, after) << "the failed command wrote 'out'";
}

#define WORKLOAD(head) \
  "name: w\n" head     \
  "tasks:\n  - {name: a_resnet18, arch: resnet18, num_classes: 3, dataset: good_CL.h5}\n"
#define ONE_TASK(fields) \
  "name: w\ntasks:\n  - {name: a_resnet18, arch: resnet18, num_classes: 3, " fields "}\n"
#define DETECTOR(fields)                                                                      \
  "name: w\ntasks:\n  - {name: d_x, kind: detection, num_classes: 2, image_size: 64, " fields \
  "}"                                                                                         \
  "\n"

INSTANTIATE_TEST_SUITE_P(
    Config, MalformedInput,
    ::testing::Values(
        Case{"NegativeBatchSize",
             WORKLOAD("defaults: {batch_size: -4}\n"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: defaults.batch_size: got -4; expected a positive integer"}},
        Case{"TasksAsAMapping",
             "name: w\ntasks: {a: 1}\n",
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: tasks: got a mapping; expected a list of tasks"}},
        Case{"EmptyWorkload",
             "\n",
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml: (top level): got nothing; expected a mapping with name"}},
        Case{"ListAtTheTop",
             "- a\n- b\n",
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:1: (top level): got a list; expected a mapping"}},
        Case{"TabIndentation",
             "name: w\ntasks:\n\t- {name: a}\n",
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:3:2: malformed YAML", "fix the syntax at that line"}},
        Case{"DetectorSizeNotAMultipleOf32",
             "name: w\ntasks:\n  - {name: d_x, arch: yolov3-tiny, kind: detection, num_classes: 2, "
             "image_size: 100}\n",
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:3: tasks[0].image_size: got 100", "needs a multiple of 32"}},
        Case{"UnknownPrecision",
             WORKLOAD("precision: fp8\n"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: precision: got 'fp8'; expected auto, fp32, bf16 or fp16"}},
        Case{"UnknownChannelsLast",
             WORKLOAD("channels_last: maybe\n"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: channels_last: got 'maybe'; expected auto, on or off"}},
        Case{"NegativeLearningRate",
             WORKLOAD("search: {lr: -1}\n"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: search.lr: got -1; expected a positive learning rate"}},
        Case{"NegativeMaxTrials",
             WORKLOAD("search: {max_trials: -2}\n"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:2: search.max_trials: got -2; expected >= 0"}},
        Case{"MetricOfAnotherKind",
             ONE_TASK("metric: map50"),
             "gemel inspect --config w.yaml",
             3,
             {"w.yaml:3: tasks[0].metric: got 'map50'; a classification task is scored by top1"}},
        Case{"DarknetCfgMissing",
             DETECTOR("arch: 'darknet:nope.cfg'"),
             "gemel inspect --config w.yaml",
             4,
             {"nope.cfg: Darknet cfg does not exist; check the path"}},
        Case{"DarknetCfgBadNumber",
             DETECTOR("arch: 'darknet:bad.cfg'"),
             "gemel inspect --config w.yaml",
             3,
             {"bad.cfg:4: filters='abc': expected whole numbers"}},
        Case{"DarknetCfgUnknownLayer",
             DETECTOR("arch: 'darknet:unknown.cfg'"),
             "gemel inspect --config w.yaml",
             3,
             {"unknown.cfg:3: unknown layer [teleport]; gemel builds convolutional"}}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Datasets, MalformedInput,
    ::testing::Values(
        Case{"DatasetMissing",
             ONE_TASK("dataset: gone_CL.h5"),
             "gemel train --config w.yaml --out out",
             3,
             {"w.yaml:3: tasks[0].dataset:",
              "gone_CL.h5' does not exist; build it with gemel-data"}},
        Case{"ClassesDisagree",
             "name: w\ntasks:\n  - {name: a_resnet18, arch: resnet18, num_classes: 5, dataset: "
             "good_CL.h5}\n",
             "gemel train --config w.yaml --out out",
             3,
             {"task 'a_resnet18': num_classes is 5 but dataset",
              "good_CL.h5 has 3 classes; make them agree"}},
        Case{"NoValidationSplit",
             ONE_TASK("dataset: noval_CL.h5"),
             "gemel train --config w.yaml --out out",
             4,
             {"noval_CL.h5: no val images", "gemel-data"}},
        Case{"TruncatedDataset",
             ONE_TASK("dataset: cut_CL.h5"),
             "gemel train --config w.yaml --out out",
             4,
             {"cut_CL.h5: cannot be opened as HDF5", "rebuild it with gemel-data"}},
        Case{"DatasetInTheOriginalHdf5Format",
             ONE_TASK("dataset: oldformat_CL.h5"),
             "gemel train --config w.yaml --out out",
             4,
             {"oldformat_CL.h5: written in HDF5's original file format (superblock version 0)",
              "no checksums", "rebuild it with gemel-data"}},
        Case{"DatasetHeapObjectOverrun",
             ONE_TASK("dataset: heapobject_CL.h5"),
             "gemel train --config w.yaml --out out",
             4,
             {"heapobject_CL.h5: attribute '", "is corrupt (global heap object 1 at",
              "holds 4611686018427387904 bytes", "rebuild it with gemel-data"}},
        Case{"TextAsDataset",
             "",
             "gemel-data verify text_CL.h5",
             4,
             {"text_CL.h5: not an HDF5 file", "rebuild it with gemel-data"}},
        Case{"NotAGemelDataset",
             "",
             "gemel-data verify wrongformat_CL.h5",
             4,
             {"wrongformat_CL.h5: not a gemel dataset", "(/)", "rebuild it with gemel-data"}},
        Case{"NewerDatasetVersion",
             "",
             "gemel-data info version9_CL.h5",
             4,
             {"version9_CL.h5: dataset format version 9 is newer than this gemel reads (1); update "
              "gemel"}},
        Case{"LabelOutOfRange",
             "",
             "gemel-data verify badlabel_CL.h5",
             4,
             {"badlabel_CL.h5: label 7 of image 3 is out of range 0..2 (/val/labels)",
              "rebuild it"}},
        Case{"FewerLabelsThanImages",
             "",
             "gemel-data verify fewlabels_CL.h5",
             4,
             {"fewlabels_CL.h5: expected one label per image (/train/labels)",
              "rebuild it with gemel-data"}},
        Case{"FloatImages",
             "",
             "gemel-data verify floatimages_CL.h5",
             4,
             {"floatimages_CL.h5: expected uint8 [N,16,16,3]", "(/train/images)", "rebuild it"}},
        Case{"NoSuchDataset",
             "",
             "gemel-data info nothing_CL.h5",
             4,
             {"nothing_CL.h5: no such file; check the path"}},
        Case{"ClassOutsideFashionMnist",
             "",
             "gemel-data fashion-mnist --out out --classes 0,99",
             2,
             {"--classes: 99 is not a Fashion-MNIST class (0..9)"}}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Weights, MalformedInput,
    ::testing::Values(
        Case{"EmptyWeightsFile",
             ONE_TASK("weights: empty.pt"),
             "gemel inspect --config w.yaml",
             4,
             {"task 'a_resnet18' (key weights):", "empty.pt: not a PyTorch zip archive",
              "torch.save(model.state_dict(), path)"}},
        Case{"ZipWithoutPickle",
             ONE_TASK("weights: nopkl.pt"),
             "gemel inspect --config w.yaml",
             4,
             {"task 'a_resnet18' (key weights):", "nopkl.pt: holds no data.pkl record",
              "torch.save"}},
        Case{"DarknetWeightsOfAnotherNetwork",
             DETECTOR("arch: yolov3-tiny, weights: rand.weights"),
             "gemel inspect --config w.yaml",
             4,
             {"task 'd_x' (key weights):", "rand.weights: holds", "float32 values after its",
              "give the .weights file trained with this cfg"}},
        Case{"ResultsAsWeights",
             ONE_TASK("weights: merged/results.h5"),
             "gemel inspect --config w.yaml",
             4,
             {"results.h5: not a PyTorch zip archive"}}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Results, MalformedInput,
    ::testing::Values(
        Case{"NoSuchResults",
             "",
             "gemel eval --results nothing.h5",
             4,
             {"nothing.h5: no such file; check the path"}},
        Case{"TruncatedResults",
             "",
             "gemel eval --results r_cut.h5",
             4,
             {"r_cut.h5: cannot be opened as HDF5", "run the merge again"}},
        Case{"ResultsHeapCollectionTooLarge",
             "",
             "gemel eval --results r_heap.h5",
             4,
             {"r_heap.h5: attribute '", "is corrupt (the global heap collection at",
              "claims 4611686018427387904 bytes", "run the merge again"}},
        Case{"DatasetAsResults",
             "",
             "gemel eval --results good_CL.h5",
             4,
             {"good_CL.h5: not a gemel results file",
              "give the results.h5 that 'gemel merge' wrote"}},
        Case{"AlteredFormat",
             "",
             "gemel export --results r_format.h5 --all --out out",
             4,
             {"r_format.h5: not a gemel results file"}},
        Case{"NewerResultsVersion",
             "",
             "gemel eval --results r_version.h5",
             4,
             {"r_version.h5: results format version 99; this gemel reads versions 1 to 2: update "
              "gemel"}},
        Case{"NoTasksGroup",
             "",
             "gemel eval --results r_notasks.h5",
             4,
             {"r_notasks.h5:", "(/tasks)", "not a complete gemel results file"}},
        Case{"NoMemoryGroup",
             "",
             "gemel eval --results r_nomemory.h5",
             4,
             {"r_nomemory.h5:", "(/memory)", "not a complete gemel results file"}},
        Case{"TensorOfAnotherShape",
             "",
             "gemel eval --results r_shape.h5",
             4,
             {"r_shape.h5 (/tasks/shoes_a_resnet18",
              "wrong shape for 'fc.weight (file [3,3], model [3,512])'"}},
        Case{"SharedTensorMissing",
             "",
             "gemel eval --results r_dropshared.h5",
             4,
             {"r_dropshared.h5 (/tasks/", "missing key", ".weight'"}},
        Case{"PlanNotJson",
             "",
             "gemel eval --results r_badplan.h5",
             4,
             {"r_badplan.h5 (/search/state plan): the sharing plan is not"}},
        Case{"ArchAltered",
             "",
             "gemel eval --results r_arch.h5",
             4,
             {"r_arch.h5 (/tasks/shoes_a_resnet18):", "resnet51", "the file was altered"}},
        Case{"KindAltered",
             "",
             "gemel eval --results r_kind.h5",
             4,
             {"r_kind.h5: /tasks/shoes_a_resnet18 attribute kind is 'segmentation'",
              "the file was altered"}},
        Case{"UnknownTaskToExport",
             "",
             "gemel export --results merged/results.h5 --task nope --out out",
             2,
             {"--task 'nope': not a task of merged/results.h5; its tasks: shoes_a_resnet18, "
              "bags_b_resnet18"}},
        Case{"NothingToResume",
             "",
             "gemel merge --config trained/pair.trained.yaml --out nowhere --resume",
             4,
             {"nowhere/results.h5: nothing to resume from; run gemel merge without --resume"}}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Edge, MalformedInput,
    ::testing::Values(
        Case{"NoSuchProfile",
             "",
             "gemel simulate --results merged/results.h5 --profile nope.h5",
             4,
             {"nope.h5: no such file; check the path"}},
        Case{"ResultsAsProfile",
             "",
             "gemel simulate --results merged/results.h5 --profile merged/results.h5",
             4,
             {"results.h5: not a gemel profile", "give the file that 'gemel profile --out' wrote"}},
        Case{"ProfileMissingATask",
             "",
             "gemel simulate --results merged/results.h5 --profile p_notask.h5",
             4,
             {"p_notask.h5:", "(/tasks/bags_b_resnet18)", "run 'gemel profile' again"}},
        Case{"ProfileMissingATable",
             "",
             "gemel simulate --results merged/results.h5 --profile p_batches.h5",
             4,
             {"p_batches.h5:", "/tasks/bags_b_resnet18/latency_p95", "run 'gemel profile' again"}},
        Case{"NewerProfileVersion",
             "",
             "gemel report --results merged/results.h5 --profile p_version.h5 --out out",
             4,
             {"p_version.h5: profile format version 7", "run 'gemel profile' again"}},
        Case{
            "BudgetBelowEveryModel",
            "",
            "gemel simulate --results merged/results.h5 --profile P.h5 --memory 1MiB",
            2,
            {"--memory: the budget of 1.0 MiB", "is below what model", "give budgets of at least"}},
        Case{"BudgetNotAnAmount",
             "",
             "gemel simulate --results merged/results.h5 --profile P.h5 --memory lots",
             2,
             {"--memory", "'lots'"}},
        Case{"SlaNotADuration",
             "",
             "gemel simulate --results merged/results.h5 --profile P.h5 --sla soon",
             2,
             {"--sla", "'soon'"}},
        Case{"BatchOfZero",
             "",
             "gemel profile --results merged/results.h5 --batch 0 --out out",
             2,
             {"--batch '0': '0' is not a positive batch size"}},
        Case{"NoSuchDevice",
             "",
             "gemel profile --results merged/results.h5 --device cuda:7 --out out",
             2,
             {"--device cuda:7", "use --device cpu"}},
        Case{"ReportOfNoResults",
             "",
             "gemel report --results nothing.h5 --out out",
             4,
             {"nothing.h5: no such file; check the path"}}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    CommandLine, MalformedInput,
    ::testing::Values(
        Case{"MergeWithoutOut",
             "",
             "gemel merge --config trained/pair.trained.yaml",
             2,
             {"the option '--out' is required but missing", "gemel merge --help"}},
        Case{"NegativeTimeout",
             "",
             "gemel merge --config trained/pair.trained.yaml --out out --timeout -5",
             2,
             {"--timeout -5: expected seconds >= 0"}},
        Case{"UnknownBackend",
             "",
             "gemel merge --config trained/pair.trained.yaml --out out --backend pigeon",
             2,
             {"--backend 'pigeon': expected auto, mpi, nccl or single"}},
        Case{"UnknownPrecisionFlag",
             "",
             "gemel train --config trained/pair.trained.yaml --out out --precision fp8",
             2,
             {"--precision 'fp8': expected auto, fp32, bf16 or fp16"}},
        Case{"EvalWithoutResults",
             "",
             "gemel eval",
             2,
             {"the option '--results' is required but missing", "gemel eval --help"}},
        Case{"BenchUnknownArch",
             "",
             "gemel bench --arch nope",
             2,
             {"--arch: 'nope' is not a zoo, Darknet or Faster R-CNN arch; expected one of: "
              "resnet18"}},
        Case{"NotANumber",
             "",
             "gemel merge --config trained/pair.trained.yaml --out out --max-trials many",
             2,
             {"--max-trials", "many", "gemel merge --help"}},
        Case{"DataUnknownCommand",
             "",
             "gemel-data convert",
             2,
             {"'convert' is not a gemel-data command"}}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace gemel
