#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include <filesystem>
#include <fstream>

#include "gemel/core/error.h"
#include "gemel/models/state_dict.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;
using gemel::testing::writeText;
namespace fs = std::filesystem;

std::string errorOf(const std::string& path) {
  try {
    readStateDict(path);
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

void python(const std::string& code, const std::string& dir) {
  const auto r =
      run("cd " + shellQuote(dir) + " && " + shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(code));
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

TEST(StateDict, RoundTripKeepsOrderDtypesAndValues) {
  TempDir dir;
  const StateDict state = {{"z.weight", torch::randn({3, 4})},
                           {"a.count", torch::tensor({int64_t{5}})},
                           {"m.mask", torch::randint(0, 255, {7}, torch::kUInt8)},
                           {"d.value", torch::randn({2}, torch::kDouble)}};
  writeStateDict(dir.file("s.pt"), state);
  const auto back = readStateDict(dir.file("s.pt"));
  ASSERT_EQ(back.size(), state.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(back[i].first, state[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), state[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, state[i].second)) << state[i].first;
  }
  // written through a temporary file that does not stay behind
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(StateDict, ReadsPythonViewsSharedStoragesAndParameters) {
  TempDir dir;
  python(R"(
import collections, torch
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
sd = collections.OrderedDict()
sd['full'] = base
sd['transposed'] = base.t()            # strided view of the same storage
sd['row'] = base[2]                    # storage offset 12
sd['param'] = torch.nn.Parameter(torch.ones(2, 2))
sd['half'] = torch.full((3,), 1.5, dtype=torch.float16)
sd._metadata = {'': {'version': 1}}
torch.save(sd, 'views.pt')
)",
         dir.path());
  const auto sd = readStateDict(dir.file("views.pt"));
  ASSERT_EQ(sd.size(), 5u);
  const auto base = torch::arange(24, torch::kFloat).reshape({4, 6});
  EXPECT_TRUE(torch::equal(sd[0].second, base));
  EXPECT_TRUE(torch::equal(sd[1].second, base.t()));
  EXPECT_TRUE(torch::equal(sd[2].second, base[2]));
  EXPECT_TRUE(torch::equal(sd[3].second, torch::ones({2, 2})));
  EXPECT_EQ(sd[4].second.scalar_type(), torch::kHalf);
  EXPECT_EQ(sd[4].second[1].item<float>(), 1.5f);
}

TEST(StateDict, WrittenFileLoadsInPythonAsAPlainDict) {
  TempDir dir;
  writeStateDict(dir.file("c.pt"), {{"w", torch::arange(6, torch::kFloat).reshape({2, 3})}});
  python(R"(
import torch
d = torch.load('c.pt', weights_only=True)  # the strict loader: plain torch.save format only
assert isinstance(d, dict) and list(d) == ['w'], d
assert torch.equal(d['w'], torch.arange(6.).reshape(2, 3)), d
)",
         dir.path());
}

TEST(StateDict, BadFilesGiveOneClearError) {
  TempDir dir;
  EXPECT_NE(errorOf(dir.file("none.pt")).find("none.pt: weights file does not exist"),
            std::string::npos);
  writeText(dir.file("text.pt"), "not a zip archive at all");
  EXPECT_NE(errorOf(dir.file("text.pt")).find("text.pt: not a PyTorch zip archive"),
            std::string::npos);

  writeStateDict(dir.file("ok.pt"), {{"w", torch::randn({64, 64})}});
  const auto size = std::filesystem::file_size(dir.file("ok.pt"));
  std::filesystem::copy_file(dir.file("ok.pt"), dir.file("cut.pt"));
  std::filesystem::resize_file(dir.file("cut.pt"), size / 2);
  EXPECT_NE(errorOf(dir.file("cut.pt")).find("cut.pt: not a PyTorch zip archive"),
            std::string::npos)
      << errorOf(dir.file("cut.pt"));

  python(R"(
import torch
torch.save({'model': {'w': torch.ones(1)}, 'epoch': 3}, 'checkpoint.pt')
torch.save({'w': torch.ones(1), 'note': 'hello'}, 'mixed.pt')
torch.save([torch.ones(1)], 'list.pt')
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), 'script.pt')
)",
         dir.path());
  EXPECT_NE(errorOf(dir.file("checkpoint.pt"))
                .find("looks like a training checkpoint; save checkpoint['model']"),
            std::string::npos)
      << errorOf(dir.file("checkpoint.pt"));
  EXPECT_NE(errorOf(dir.file("mixed.pt")).find("key 'note' holds a string, not a tensor"),
            std::string::npos);
  EXPECT_NE(errorOf(dir.file("list.pt")).find("holds a list, not a state_dict"), std::string::npos);
  EXPECT_NE(errorOf(dir.file("script.pt")).find("is a TorchScript module, not a state_dict"),
            std::string::npos);
  EXPECT_TRUE(isTorchScriptFile(dir.file("script.pt")));
  EXPECT_FALSE(isTorchScriptFile(dir.file("ok.pt")));
}

// A write to an existing file that fails half-way (here: the file size limit, which binds root
// too, reached in the middle of the tensor data) is one OutputError, and leaves the file it
// would have replaced as it was, and no temporary file beside it.
TEST(StateDict, FailedWriteKeepsTheExistingFile) {
  TempDir dir;
  const auto path = dir.file("keep.pt");
  writeStateDict(path, {{"w", torch::ones({2})}});
  const auto before = fs::file_size(path);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);  // an oversized write returns EFBIG instead of killing
    const rlimit limit{64 << 10, 64 << 10};
    setrlimit(RLIMIT_FSIZE, &limit);
    int code = 3;
    try {
      writeStateDict(path, {{"w", torch::ones({256, 1024})}});  // 1 MiB of data
      code = 1;
    } catch (const OutputError&) {
      code = 0;
    } catch (...) {
      code = 2;
    }
    std::_Exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the write did not fail; 2: not an OutputError";
  EXPECT_EQ(fs::file_size(path), before);
  EXPECT_TRUE(torch::equal(readStateDict(path)[0].second, torch::ones({2})));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
  // And a write into a directory that does not exist is one OutputError too.
  EXPECT_THROW(writeStateDict(dir.file("missing_dir/x.pt"), {{"w", torch::ones({2})}}),
               OutputError);
}

}  // namespace
}  // namespace gemel::models
