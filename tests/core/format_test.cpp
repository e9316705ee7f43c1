#include <gtest/gtest.h>

#include "gemel/core/error.h"
#include "gemel/core/format.h"

namespace gemel {
namespace {

TEST(Format, ReplacesPlaceholdersInOrder) {
  EXPECT_EQ(format("{} has {} layers ({}%)", "resnet18", 21, 2.5), "resnet18 has 21 layers (2.5%)");
}

TEST(Format, ExtraPlaceholdersStayAndExtraArgumentsAreDropped) {
  EXPECT_EQ(format("a {} b {}", 1), "a 1 b {}");
  EXPECT_EQ(format("no placeholder", 1, 2), "no placeholder");
}

TEST(Error, ThrowIfNotCarriesMessageAndExitCode) {
  try {
    GEMEL_THROW_IF_NOT(1 + 1 == 3, ConfigError, "{}: key {} is bad", "w.yaml", "tasks");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "w.yaml: key tasks is bad");
    EXPECT_EQ(e.code(), ExitCode::kConfig);
  }
}

TEST(ErrorDeathTest, AssertAbortsWithExpressionAndLocation) {
  EXPECT_DEATH(GEMEL_ASSERT(2 < 1, "value {}", 7),
               "assertion '2 < 1' failed at .*format_test.cpp:[0-9]+: value 7");
}

TEST(ParseInt, WholeNumbersOnly) {
  EXPECT_EQ(parseInt("42"), 42);
  EXPECT_EQ(parseInt("-3"), -3);
  EXPECT_FALSE(parseInt("").has_value());
  EXPECT_FALSE(parseInt("4x").has_value());
  EXPECT_FALSE(parseInt(" 4").has_value());
  EXPECT_FALSE(parseInt("99999999999").has_value());
}

}  // namespace
}  // namespace gemel

namespace gemel {
namespace {

// A mistyped name gets the nearest candidate when it is near enough, and nothing otherwise.
TEST(Format, DidYouMeanSuggestsTheNearestNameOnly) {
  const std::vector<std::string> archs = {"resnet18", "resnet50", "vgg16", "mobilenet_v3_large",
                                          "inception_v3"};
  EXPECT_EQ(closestMatch("resnet5", archs), "resnet50");   // one deleted
  EXPECT_EQ(closestMatch("rsenet18", archs), "resnet18");  // two swapped: one edit
  EXPECT_EQ(closestMatch("mobilenet_v3_lrage", archs), "mobilenet_v3_large");
  EXPECT_EQ(closestMatch("vgg16", archs), "");    // exact: nothing to suggest
  EXPECT_EQ(closestMatch("alexnet", archs), "");  // nothing near
  EXPECT_EQ(closestMatch("vg", archs), "");       // short: one edit at most
  EXPECT_EQ(didYouMean("mrege", {"merge", "eval"}), " (did you mean 'merge'?)");
  EXPECT_EQ(didYouMean("zzz", {"merge", "eval"}), "");
}

}  // namespace
}  // namespace gemel
