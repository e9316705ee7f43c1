// The gemel executable as a user runs it: bad inputs give one clear message and their exit
// code; good inputs print the inspect table or JSON.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "gemel/models/zoo.h"
#include "test_support.h"

namespace gemel {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;
using gemel::testing::writeText;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    models::createZooModel("resnet18", 2)->saveWeightsFile(dir_->file("r18_2.pt"));
    models::createZooModel("mobilenet_v2", 2)->saveWeightsFile(dir_->file("mnv2_2.pt"));
    // a weights file cut in half, as an interrupted copy leaves it
    std::filesystem::copy_file(dir_->file("r18_2.pt"), dir_->file("cut.pt"));
    std::filesystem::resize_file(dir_->file("cut.pt"),
                                 std::filesystem::file_size(dir_->file("cut.pt")) / 2);
    std::filesystem::create_symlink(dir_->file("loop"), dir_->file("loop"));
    std::filesystem::create_directory(dir_->file("a_dir"));
  }
  static void TearDownTestSuite() { delete dir_; }

  // Writes `yaml` as a workload next to the weight files and runs gemel with `args`.
  static testing::CommandResult gemel(const std::string& args, const std::string& yaml = "") {
    if (!yaml.empty()) writeText(dir_->file("w.yaml"), yaml);
    return run(shellQuote(GEMEL_BINARY) + " " + args);
  }
  static std::string config() { return "inspect --config " + shellQuote(dir_->file("w.yaml")); }

  static TempDir* dir_;
};
TempDir* Cli::dir_ = nullptr;

// Each bad input: its exit code and the words the message must contain.
struct BadInput {
  const char* name;
  const char* yaml;  // empty: args only
  const char* args;  // appended; "@" stands for the config flags
  int exit_code;
  std::vector<const char*> says;
};

// gtest prints the case's name instead of its bytes.
void PrintTo(const BadInput& input, std::ostream* os) { *os << input.name; }

class CliBadInput : public Cli, public ::testing::WithParamInterface<BadInput> {};

TEST_P(CliBadInput, GivesOneClearErrorAndItsExitCode) {
  const auto& c = GetParam();
  std::string args = c.args;
  if (args == "@") args = config();
  // @loop: a symbolic link to itself; @dir: a directory.
  for (const auto& [mark, path] : {std::pair<std::string, std::string>{"@loop", dir_->file("loop")},
                                   {"@dir", dir_->file("a_dir")}}) {
    const auto at = args.find(mark);
    if (at != std::string::npos) args.replace(at, mark.size(), shellQuote(path));
  }
  const auto r = gemel(args, c.yaml);
  EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
  for (const char* s : c.says)
    EXPECT_NE(r.output.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
}

const char* kTask =
    "name: w\ntasks:\n  - name: cars_resnet18\n    arch: resnet18\n    num_classes: 2\n";

INSTANTIATE_TEST_SUITE_P(
    Inputs, CliBadInput,
    ::testing::Values(
        BadInput{"MalformedYaml",
                 "name: w\ntasks:\n  - name: a\n   arch: [resnet18\n",
                 "@",
                 3,
                 {"error:", "w.yaml:", "malformed YAML"}},
        BadInput{"UnknownArch",
                 "name: w\ntasks:\n  - {name: a, arch: resnet51, num_classes: 2}\n",
                 "@",
                 3,
                 {"w.yaml:3: tasks[0].arch: got 'resnet51', which is not a known arch (did you "
                  "mean 'resnet50'?); expected one of: resnet18, resnet34"}},
        BadInput{"DuplicateTaskNames",
                 "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 2}\n  - {name: a, "
                 "arch: vgg11, num_classes: 2}\n",
                 "@",
                 3,
                 {"w.yaml:4: tasks[1].name: duplicate task name 'a' (first used by tasks[0]"}},
        BadInput{"TargetOutOfRange",
                 "name: w\ndefaults: {accuracy_target: 0}\ntasks:\n  - {name: a, arch: resnet18, "
                 "num_classes: 2}\n",
                 "@",
                 3,
                 {"defaults.accuracy_target: got 0; expected a fraction in (0, 1]"}},
        BadInput{
            "MissingWeightsFile",
            "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 2, weights: gone.pt}\n",
            "@",
            3,
            {"tasks[0].weights: file '", "gone.pt' does not exist"}},
        BadInput{"UnknownKey",
                 "name: w\ntasks:\n  - {name: a, arch: resnet18, num_class: 2}\n",
                 "@",
                 3,
                 {"tasks[0].num_class: unknown key (did you mean 'num_classes'?); expected one "
                  "of: name, arch",
                  "tasks[0].num_classes: missing"}},
        BadInput{"WrongType",
                 "name: w\ndefaults:\n  batch_size: lots\ntasks:\n  - {name: a, arch: resnet18, "
                 "num_classes: 2}\n",
                 "@",
                 3,
                 {"w.yaml:3: defaults.batch_size: got 'lots'; expected an integer"}},
        BadInput{"EveryProblemAtOnce",
                 "name: w\nsearch: {strategy: fastest}\ntasks:\n  - {name: 'bad name', arch: vgg, "
                 "num_classes: -1}\n",
                 "@",
                 3,
                 {"4 problems in workload", "search.strategy: got 'fastest'",
                  "tasks[0].name: got 'bad name'", "tasks[0].arch: got 'vgg'",
                  "tasks[0].num_classes: got -1"}},
        BadInput{"MissingConfigFile",
                 "",
                 "inspect --config /nonexistent/workload.yaml",
                 3,
                 {"/nonexistent/workload.yaml: no such workload file"}},
        BadInput{"NoTasks", "name: w\n", "@", 3, {"tasks: missing or empty"}},
        BadInput{
            "WeightsOfAnotherArch",
            "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 2, weights: mnv2_2.pt}\n",
            "@",
            4,
            {"task 'a' (key weights):",
             "mnv2_2.pt: does not fit arch 'resnet18': missing key 'conv1.weight'",
             "another architecture"}},
        BadInput{
            "HeadOfAnotherSize",
            "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 5, weights: r18_2.pt}\n",
            "@",
            4,
            {"wrong shape for 'fc.weight (file [2,512], model [5,512])'", "skip_head: true"}},
        BadInput{
            "TruncatedWeights",
            "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 2, weights: cut.pt}\n",
            "@",
            4,
            {"cut.pt: not a PyTorch zip archive"}},
        BadInput{
            "ConfigGivenAsWeights",
            "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 2, weights: w.yaml}\n",
            "@",
            4,
            {"w.yaml: not a PyTorch zip archive"}},
        BadInput{"StateDictAsTorchScript",
                 "name: w\ntasks:\n  - {name: a, arch: torchscript, weights: r18_2.pt}\n",
                 "@",
                 4,
                 {"r18_2.pt: is not a TorchScript module"}},
        BadInput{"BadArchSpec",
                 "",
                 "inspect --arch resnet50:zero",
                 2,
                 {"--arch 'resnet50:zero'", "ARCH[:N]"}},
        BadInput{"UnknownArchSpec",
                 "",
                 "inspect --arch alexnet",
                 2,
                 {"'alexnet' is not an arch gemel builds"}},
        // torchscript is a file, not a name: said so, and not listed as a name to give.
        BadInput{"TorchScriptArchSpec",
                 "",
                 "inspect --arch torchscript",
                 2,
                 {"a TorchScript model is built from its file, not by name", "arch: torchscript"}},
        // A mistyped detector arch: one error, the arch's, and no guess that it classifies.
        BadInput{"MistypedDetectorArch",
                 "name: w\ntasks:\n  - {name: a, arch: 'fasterrcnn:resnt18', kind: detection, "
                 "num_classes: 2, image_size: 64}\n",
                 "@",
                 3,
                 {"which is not a known arch (did you mean 'fasterrcnn:resnet18'?)",
                  "1 problem in workload"}},
        // A path the file system cannot resolve is the user's input, not an internal error.
        BadInput{"LoopedSymlinkConfig", "", "inspect --config @loop", 4, {"check this path"}},
        BadInput{
            "ResultsDirectory", "", "eval --results @dir", 4, {"a directory, not a results file"}},
        BadInput{"ConfigAndArch", "", "inspect --arch vgg11 --config x.yaml", 2, {"not both"}},
        BadInput{"UnknownOption",
                 "",
                 "inspect --arhc vgg11",
                 2,
                 {"unrecognised option '--arhc' (did you mean '--arch'?)", "gemel inspect --help"}},
        // Boost's guessing is off: a prefix of an option is not that option.
        BadInput{"OptionPrefix",
                 "",
                 "eval --result r.h5",
                 2,
                 {"unrecognised option '--result' (did you mean '--results'?)"}},
        BadInput{"UnknownCommand",
                 "",
                 "merg",
                 2,
                 {"'merg' is not a gemel command (did you mean 'merge'?)"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(Cli, SkipHeadLoadsWeightsWithAnotherHead) {
  const auto r = gemel(config(),
                       "name: w\ntasks:\n  - {name: a, arch: resnet18, num_classes: 5, weights: "
                       "r18_2.pt, skip_head: true}\n");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(Cli, InspectPrintsTotalsAndGroupsLargestFirst) {
  const auto r = gemel("inspect --arch resnet18 --arch resnet34:3 --top 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("total weight bytes:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sharing every shareable layer saves"), std::string::npos) << r.output;
  // resnet18's three 512x512 convs pair with resnet34's first three: the largest group
  EXPECT_NE(
      r.output.find(
          "27.0 MiB     3  resnet18,resnet34                        conv2d weight[512,512,3,3]"),
      std::string::npos)
      << r.output;
}

// Detectors by name and by cfg path: a YOLOv3-tiny's 512->256 3x3 convolution (Darknet: no
// bias, BatchNorm after) shares with a ResNet-18's of the same signature.
TEST_F(Cli, InspectDarknetDetectorsBesideClassifiers) {
  const auto cfg = std::string(GEMEL_SOURCE_DIR) + "/configs/models/yolov3-tiny.cfg";
  const auto r =
      gemel("inspect --arch yolov3-tiny:2 --arch darknet:" + cfg + ":3 --arch resnet18:2 --top 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("yolov3-tiny           2       13     33.1 MiB"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("9.0 MiB     1  yolov3-tiny,darknet:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("conv2d weight[512,256,3,3]"), std::string::npos) << r.output;
}

// `gemel inspect --json` of `archs`, then `python_check` (a script run on the JSON file's path);
// the check's result.
testing::CommandResult checkInspectJson(const TempDir& dir, const std::string& archs,
                                        const std::string& python_check) {
  const auto json_file = dir.file("inspect.json");
  const auto r =
      run(shellQuote(GEMEL_BINARY) + " inspect --json " + archs + " > " + shellQuote(json_file));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(python_check) + " " +
             shellQuote(json_file));
}

TEST_F(Cli, InspectJsonIsValidAndConsistent) {
  // Python's json module checks the syntax; the sums are checked against the groups.
  const auto check = checkInspectJson(*dir_, "--arch resnet50:3 --arch vgg16:2 --arch resnet50", R"(
import json, sys
d = json.load(open(sys.argv[1]))
groups = d['groups']
assert d['total_bytes'] > 0 and len(d['models']) == 3, d['models']
assert [m['name'] for m in d['models']] == ['resnet50_1', 'vgg16', 'resnet50_2'], d['models']
assert sum(g['bytes_saved'] for g in groups) == d['savings_bytes']
assert all(a['bytes_saved'] >= b['bytes_saved'] for a, b in zip(groups, groups[1:]))
for g in groups:
    assert set(g) >= {'signature', 'models', 'instances', 'bytes_saved'}, g
    for inst in g['instances']:
        assert [m.split(':')[0] for m in inst] == g['models'], (inst, g['models'])
    assert g['bytes_saved'] == (len(g['models']) - 1) * g['layer_bytes'] * len(g['instances'])
print(d['savings_bytes'], d['total_bytes'])
)");
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

// The pairs of layers (model A's module, model B's) that the catalog lets two models share.
const char* kPairs = R"(
import json, sys
d = json.load(open(sys.argv[1]))
def pairs(a, b):
    out = set()
    for g in d['groups']:
        for inst in g['instances']:
            names = dict(m.split(':', 1) for m in inst)
            if a in names and b in names:
                out.add((names[a], names[b]))
    return out
)";

// A Faster R-CNN's ResNet-50 body has every convolution of a ResNet-50 classifier: the catalog
// pairs them (backbone.body.layer3.1.conv2 with layer3.1.conv2), and the FPN, RPN and box head
// find no partner in a classifier. Between two detectors those pair too, all but the
// predictor, whose shape follows the number of classes.
TEST_F(Cli, InspectPairsAFasterRcnnBodyWithAClassifiersConvolutions) {
  auto check = checkInspectJson(*dir_, "--arch fasterrcnn_resnet50_fpn:3 --arch resnet50:10",
                                std::string(kPairs) + R"(
p = pairs('fasterrcnn_resnet50_fpn', 'resnet50')
assert ('backbone.body.layer3.1.conv2', 'layer3.1.conv2') in p, sorted(p)[:5]
assert ('backbone.body.conv1', 'conv1') in p, sorted(p)[:5]
assert all(a.startswith('backbone.body.') for a, b in p), [x for x in p if not x[0].startswith('backbone.body.')]
assert len(p) >= 53, len(p)  # ResNet-50's 53 convolutions
print(len(p), 'pairs;', d['savings_bytes'], 'bytes sharable')
)");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  check =
      checkInspectJson(*dir_, "--arch fasterrcnn_resnet50_fpn:3 --arch fasterrcnn_resnet50_fpn:2",
                       std::string(kPairs) + R"(
p = pairs('fasterrcnn_resnet50_fpn_1', 'fasterrcnn_resnet50_fpn_2')
same = {a for a, b in p if a == b}
for m in ('backbone.fpn.layer_blocks.0.0', 'backbone.fpn.inner_blocks.3.0', 'rpn.head.conv.0.0',
          'rpn.head.cls_logits', 'roi_heads.box_head.fc6', 'roi_heads.box_head.fc7'):
    assert m in same, (m, sorted(same)[:8])
assert not any(a.startswith('roi_heads.box_predictor') for a, b in p), p
)");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  // A backbone that is not one of the builds is refused, naming them.
  const auto bad = run(shellQuote(GEMEL_BINARY) + " inspect --arch fasterrcnn:resnet34:3");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("fasterrcnn:<resnet18"), std::string::npos) << bad.output;
}

TEST_F(Cli, DumpConfigPrintsTheResolvedWorkload) {
  const auto r = gemel(config() + " --dump-config", kTask);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy_target: 0.95"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dataset: " + dir_->file("cars_CL.h5")), std::string::npos) << r.output;
}

}  // namespace
}  // namespace gemel
