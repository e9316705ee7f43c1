// Darknet cfg files: the two that ship under configs/models/ parse to the YOLOv3 and
// YOLOv3-tiny layer graphs (their parameter counts are the published ones for 80 classes), and
// each kind of malformed file is one ConfigError naming file:line.
#include <gtest/gtest.h>

#include "gemel/core/error.h"
#include "gemel/models/darknet_cfg.h"

namespace gemel::models {
namespace {

const std::string kModels = std::string(GEMEL_SOURCE_DIR) + "/configs/models/";

int count(const DarknetNet& net, DarknetLayerType type) {
  int n = 0;
  for (const auto& l : net.layers) n += l.type == type;
  return n;
}

TEST(DarknetCfg, YoloV3HasDarknet53AndThreeScales) {
  const auto net = parseDarknetCfg(kModels + "yolov3.cfg");
  ASSERT_EQ(net.layers.size(), 107u);
  EXPECT_EQ(count(net, DarknetLayerType::kConvolutional), 75);
  EXPECT_EQ(count(net, DarknetLayerType::kShortcut), 23);
  EXPECT_EQ(count(net, DarknetLayerType::kYolo), 3);
  EXPECT_EQ(net.classes(), 80);
  EXPECT_EQ(net.parameterCount(), 61949149);  // torchsummary's figure for YOLOv3 (80 classes)
  // The heads see the input at 1/32, 1/16 and 1/8.
  EXPECT_EQ(net.layers[82].scale, 32);
  EXPECT_EQ(net.layers[94].scale, 16);
  EXPECT_EQ(net.layers[106].scale, 8);
  EXPECT_EQ(net.layers[86].out_channels, 256 + 512);  // route -1, 61
}

TEST(DarknetCfg, YoloV3TinyAndNumClassesSetsTheHeads) {
  const auto net = parseDarknetCfg(kModels + "yolov3-tiny.cfg");
  ASSERT_EQ(net.layers.size(), 24u);
  EXPECT_EQ(net.layers[20].out_channels, 128 + 256);  // route -1, 8
  EXPECT_EQ(net.layers[16].scale, 32);
  EXPECT_EQ(net.layers[23].scale, 16);
  EXPECT_EQ(net.layers[11].stride, 1);  // the size-2, stride-1 maxpool
  EXPECT_EQ(net.layers[11].scale, 32);
  const auto two = parseDarknetCfg(kModels + "yolov3-tiny.cfg", 2);
  EXPECT_EQ(two.classes(), 2);
  EXPECT_EQ(two.layers[15].filters, 3 * (5 + 2));
  EXPECT_EQ(two.layers[22].filters, 3 * (5 + 2));
}

TEST(DarknetCfg, ArchNamesResolveToTheShippedCfgsOrAFile) {
  EXPECT_TRUE(isDarknetArch("yolov3"));
  EXPECT_TRUE(isDarknetArch("yolov3-tiny"));
  EXPECT_TRUE(isDarknetArch("darknet:/x/my.cfg"));
  EXPECT_FALSE(isDarknetArch("darknet:"));
  EXPECT_FALSE(isDarknetArch("resnet18"));
  // The built-in text is the file's.
  EXPECT_EQ(darknetForArch("yolov3", 0).parameterCount(),
            parseDarknetCfg(kModels + "yolov3.cfg").parameterCount());
  EXPECT_EQ(darknetForArch("darknet:" + kModels + "yolov3-tiny.cfg", 4).classes(), 4);
  EXPECT_THROW(darknetForArch("darknet:/nonexistent.cfg", 1), Error);
}

std::string errorOf(const std::string& body) {
  try {
    parseDarknetCfgText("[net]\nwidth=64\nheight=64\n" + body, "my.cfg");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(DarknetCfg, MalformedFilesNameFileAndLine) {
  const std::string conv =
      "[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n";
  const std::string head =
      "[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2, 3,4, 5,6\nclasses=2\n";
  EXPECT_EQ(errorOf(conv + head), "no error");
  EXPECT_NE(errorOf("filters 8\n").find("my.cfg:4: 'filters 8' is not an option"),
            std::string::npos);
  EXPECT_NE(errorOf("[dropout]\n").find("my.cfg:4: unknown layer [dropout]"), std::string::npos);
  EXPECT_NE(errorOf(conv + "[route]\nlayers=-1, 5\n" + head)
                .find("my.cfg:11: layers=5 names layer 5, but only layers 0..0"),
            std::string::npos)
      << errorOf(conv + "[route]\nlayers=-1, 5\n" + head);
  EXPECT_NE(errorOf(conv + "[maxpool]\n[upsample]\n[yolo]\nmask=0\nanchors=1,2\nclasses=1\n")
                .find("must follow a [convolutional]"),
            std::string::npos);
  EXPECT_NE(errorOf("[convolutional]\nfilters=20\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2, 3,4, "
                    "5,6\nclasses=2\n")
                .find("my.cfg:4: the convolution before this [yolo] layer has 20 filters"),
            std::string::npos);
  EXPECT_NE(errorOf(conv + "[convolutional]\nfilters=4\nsize=1\n[shortcut]\nfrom=-2\n" + head)
                .find("adds layer 0 (8 channels at 1/1) to the previous layer (4 channels"),
            std::string::npos);
  EXPECT_NE(errorOf(conv + "[convolutional]\nfilters=x\n").find("my.cfg:11: filters='x'"),
            std::string::npos)
      << errorOf(conv + "[convolutional]\nfilters=x\n");
  EXPECT_NE(errorOf(conv).find("no [yolo] layer"), std::string::npos);
  EXPECT_THROW(parseDarknetCfg("/nonexistent/x.cfg"), Error);
}

}  // namespace
}  // namespace gemel::models
