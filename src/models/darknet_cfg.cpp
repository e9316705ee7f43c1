#include "gemel/models/darknet_cfg.h"

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"

namespace gemel::models {
namespace {

struct Section {
  std::string type;
  int line = 0;
  std::map<std::string, std::pair<std::string, int>> options;  // key -> (value, line)
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::vector<Section> sections(const std::string& text, const std::string& source) {
  std::vector<Section> out;
  std::istringstream in(text);
  std::string raw;
  for (int line = 1; std::getline(in, raw); ++line) {
    const auto s = trim(raw.substr(0, raw.find_first_of("#;")));
    if (s.empty()) continue;
    if (s.front() == '[') {
      GEMEL_THROW_IF_NOT(s.back() == ']' && s.size() > 2, ConfigError,
                         "{}:{}: '{}' is not a section header; expected [name]", source, line, s);
      out.push_back({trim(s.substr(1, s.size() - 2)), line, {}});
      continue;
    }
    const auto eq = s.find('=');
    GEMEL_THROW_IF_NOT(eq != std::string::npos, ConfigError,
                       "{}:{}: '{}' is not an option; expected key=value", source, line, s);
    GEMEL_THROW_IF_NOT(!out.empty(), ConfigError, "{}:{}: option '{}' comes before any [section]",
                       source, line, s);
    const auto key = trim(s.substr(0, eq));
    GEMEL_THROW_IF_NOT(
        out.back().options.emplace(key, std::pair{trim(s.substr(eq + 1)), line}).second,
        ConfigError, "{}:{}: option '{}' is given twice in [{}]", source, line, key,
        out.back().type);
  }
  GEMEL_THROW_IF_NOT(!out.empty() && (out[0].type == "net" || out[0].type == "network"),
                     ConfigError, "{}:{}: expected the file to start with [net]", source,
                     out.empty() ? 1 : out[0].line);
  return out;
}

// Typed access to one section's options, errors naming file:line and the key.
class Options {
 public:
  Options(const Section& s, const std::string& source) : s_(s), source_(source) {}
  bool has(const std::string& key) const { return s_.options.count(key) > 0; }
  std::string where(const std::string& key) const {
    const auto it = s_.options.find(key);
    return format("{}:{}", source_, it == s_.options.end() ? s_.line : it->second.second);
  }
  std::vector<int> ints(const std::string& key) const {
    const auto it = s_.options.find(key);
    GEMEL_THROW_IF_NOT(it != s_.options.end(), ConfigError, "{}: [{}] needs {}=", where(key),
                       s_.type, key);
    std::vector<int> out;
    std::stringstream ss(it->second.first);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto v = parseInt(trim(item));
      GEMEL_THROW_IF_NOT(v.has_value(), ConfigError,
                         "{}: {}='{}': expected whole numbers separated by commas", where(key), key,
                         it->second.first);
      out.push_back(*v);
    }
    return out;
  }
  int integer(const std::string& key, std::optional<int> fallback = std::nullopt) const {
    if (!has(key) && fallback) return *fallback;
    const auto v = ints(key);
    GEMEL_THROW_IF_NOT(v.size() == 1, ConfigError, "{}: {}: expected one number", where(key), key);
    return v[0];
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    const auto it = s_.options.find(key);
    return it == s_.options.end() ? fallback : it->second.first;
  }

 private:
  const Section& s_;
  const std::string& source_;
};

// A layer index as the file writes it (negative: relative to `at`) made absolute and checked.
int absoluteIndex(int i, int at, const Options& o, const std::string& key) {
  const int abs = i < 0 ? at + i : i;
  GEMEL_THROW_IF_NOT(abs >= 0 && abs < at, ConfigError,
                     "{}: {}={} names layer {}, but only layers 0..{} come before this one",
                     o.where(key), key, i, abs, at - 1);
  return abs;
}

}  // namespace

int DarknetNet::classes() const {
  for (const auto& l : layers) {
    if (l.type == DarknetLayerType::kYolo) return l.classes;
  }
  return 0;
}

int64_t DarknetNet::parameterCount() const {
  int64_t n = 0;
  for (const auto& l : layers) {
    if (l.type != DarknetLayerType::kConvolutional) continue;
    n += int64_t(l.filters) * l.in_channels * l.size * l.size;
    n += l.batch_normalize ? 2 * int64_t(l.filters) : l.filters;
  }
  return n;
}

namespace {

// The [net] section: the input's size.
void readNetSection(const Section& first, const std::string& source, DarknetNet& net) {
  const Options o(first, source);
  net.width = o.integer("width", 416);
  net.height = o.integer("height", 416);
  net.channels = o.integer("channels", 3);
  GEMEL_THROW_IF_NOT(net.width > 0 && net.height > 0 && net.channels > 0, ConfigError,
                     "{}: [net] width, height and channels must be positive", o.where("width"));
}

// [route]: the layers it concatenates, all at one scale.
void readRoute(DarknetLayer& l, const Options& o, const DarknetNet& net, int at) {
  l.type = DarknetLayerType::kRoute;
  for (const int i : o.ints("layers")) l.layers.push_back(absoluteIndex(i, at, o, "layers"));
  GEMEL_THROW_IF_NOT(!l.layers.empty(), ConfigError,
                     "{}: a route needs layers=, the layers it concatenates", o.where("layers"));
  l.out_channels = 0;
  l.scale = net.layers[l.layers[0]].scale;
  for (const int i : l.layers) {
    GEMEL_THROW_IF_NOT(net.layers[i].scale == l.scale, ConfigError,
                       "{}: layers={}: layer {} is at 1/{} of the input, layer {} at 1/{}; "
                       "a route concatenates maps of one size",
                       o.where("layers"), o.text("layers", ""), l.layers[0], l.scale, i,
                       net.layers[i].scale);
    l.out_channels += net.layers[i].out_channels;
  }
}

// [yolo]: its anchors and mask; the convolution before it gets the filters the classes need
// (num_classes > 0) or must already have them.
void readYolo(DarknetLayer& l, const Options& o, DarknetNet& net, int at, int num_classes,
              const std::string& source, int line) {
  l.type = DarknetLayerType::kYolo;
  l.mask = o.ints("mask");
  const auto a = o.ints("anchors");
  GEMEL_THROW_IF_NOT(a.size() % 2 == 0 && !a.empty(), ConfigError,
                     "{}: anchors: expected pairs w,h", o.where("anchors"));
  for (std::size_t i = 0; i < a.size(); i += 2) l.anchors.emplace_back(a[i], a[i + 1]);
  for (const int m : l.mask) {
    GEMEL_THROW_IF_NOT(m >= 0 && m < static_cast<int>(l.anchors.size()), ConfigError,
                       "{}: mask={}: anchor {} does not exist ({} anchors)", o.where("mask"),
                       o.text("mask", ""), m, l.anchors.size());
  }
  l.classes = num_classes > 0 ? num_classes : o.integer("classes");
  GEMEL_THROW_IF_NOT(at > 0 && net.layers.back().type == DarknetLayerType::kConvolutional,
                     ConfigError, "{}:{}: a [yolo] layer must follow a [convolutional] one", source,
                     line);
  auto& head = net.layers.back();
  const int want = static_cast<int>(l.mask.size()) * (5 + l.classes);
  if (num_classes > 0) {
    head.filters = head.out_channels = want;
    l.in_channels = want;
  }
  GEMEL_THROW_IF_NOT(head.filters == want, ConfigError,
                     "{}:{}: the convolution before this [yolo] layer has {} filters; {} "
                     "masks x (5 + {} classes) needs {}",
                     source, head.line, head.filters, l.mask.size(), l.classes, want);
  l.out_channels = l.in_channels;
}

}  // namespace

DarknetNet parseDarknetCfgText(const std::string& text, const std::string& source,
                               int num_classes) {
  const auto all = sections(text, source);
  DarknetNet net;
  net.source = source;
  readNetSection(all[0], source, net);
  for (std::size_t k = 1; k < all.size(); ++k) {
    const auto& s = all[k];
    const Options o(s, source);
    const int at = static_cast<int>(net.layers.size());
    DarknetLayer l;
    l.line = s.line;
    l.in_channels = at == 0 ? net.channels : net.layers.back().out_channels;
    l.scale = at == 0 ? 1 : net.layers.back().scale;
    if (s.type == "convolutional") {
      l.type = DarknetLayerType::kConvolutional;
      l.filters = o.integer("filters");
      l.size = o.integer("size", 1);
      l.stride = o.integer("stride", 1);
      l.padding = o.integer("pad", 0) ? (l.size - 1) / 2 : o.integer("padding", 0);
      l.batch_normalize = o.integer("batch_normalize", 0) != 0;
      l.activation = o.text("activation", "linear");
      GEMEL_THROW_IF_NOT(l.activation == "leaky" || l.activation == "linear", ConfigError,
                         "{}: activation={}: expected leaky or linear", o.where("activation"),
                         l.activation);
      GEMEL_THROW_IF_NOT(l.filters > 0 && l.size > 0 && l.stride > 0, ConfigError,
                         "{}: [convolutional] filters, size and stride must be positive",
                         format("{}:{}", source, s.line));
      l.out_channels = l.filters;
      l.scale *= l.stride;
    } else if (s.type == "shortcut") {
      l.type = DarknetLayerType::kShortcut;
      GEMEL_THROW_IF_NOT(at > 0, ConfigError, "{}:{}: [shortcut] cannot be the first layer", source,
                         s.line);
      l.from = absoluteIndex(o.integer("from"), at, o, "from");
      const auto& other = net.layers[l.from];
      GEMEL_THROW_IF_NOT(other.out_channels == l.in_channels && other.scale == l.scale, ConfigError,
                         "{}: from={} adds layer {} ({} channels at 1/{}) to the previous layer "
                         "({} channels at 1/{}); they must match",
                         o.where("from"), o.text("from", ""), l.from, other.out_channels,
                         other.scale, l.in_channels, l.scale);
      GEMEL_THROW_IF_NOT(o.text("activation", "linear") == "linear", ConfigError,
                         "{}: a shortcut's activation must be linear", o.where("activation"));
      l.out_channels = l.in_channels;
    } else if (s.type == "route") {
      readRoute(l, o, net, at);
    } else if (s.type == "upsample") {
      l.type = DarknetLayerType::kUpsample;
      l.stride = o.integer("stride", 2);
      GEMEL_THROW_IF_NOT(l.stride >= 1 && l.scale % l.stride == 0, ConfigError,
                         "{}: stride={} does not divide the map's 1/{} scale", o.where("stride"),
                         l.stride, l.scale);
      l.scale /= l.stride;
      l.out_channels = l.in_channels;
    } else if (s.type == "maxpool") {
      l.type = DarknetLayerType::kMaxpool;
      l.size = o.integer("size", 2);
      l.stride = o.integer("stride", 2);
      GEMEL_THROW_IF_NOT(l.size > 0 && l.stride > 0, ConfigError,
                         "{}:{}: [maxpool] size and stride must be positive", source, s.line);
      l.scale *= l.stride;
      l.out_channels = l.in_channels;
    } else if (s.type == "yolo") {
      readYolo(l, o, net, at, num_classes, source, s.line);
    } else {
      throw ConfigError(
          format("{}:{}: unknown layer [{}]; gemel builds convolutional, shortcut, "
                 "route, upsample, maxpool and yolo",
                 source, s.line, s.type));
    }
    net.layers.push_back(std::move(l));
  }
  GEMEL_THROW_IF_NOT(net.classes() > 0, ConfigError, "{}: no [yolo] layer; not a detection network",
                     source);
  return net;
}

const char* builtInDarknetCfg(const std::string& arch);  // generated from configs/models/

bool isDarknetArch(const std::string& arch) {
  return builtInDarknetCfg(arch) != nullptr || (arch.rfind("darknet:", 0) == 0 && arch.size() > 8);
}

DarknetNet darknetForArch(const std::string& arch, int num_classes) {
  if (const char* text = builtInDarknetCfg(arch))
    return parseDarknetCfgText(text, "configs/models/" + arch + ".cfg", num_classes);
  GEMEL_THROW_IF_NOT(isDarknetArch(arch), ConfigError,
                     "arch '{}' is not a Darknet arch; expected yolov3, yolov3-tiny or "
                     "darknet:<path to a .cfg>",
                     arch);
  return parseDarknetCfg(arch.substr(8), num_classes);
}

DarknetNet parseDarknetCfg(const std::string& path, int num_classes) {
  const auto bytes = readFile(path, "Darknet cfg");
  return parseDarknetCfgText(std::string(bytes.begin(), bytes.end()), path, num_classes);
}

}  // namespace gemel::models

namespace gemel::models {

std::string renderDarknetCfg(const DarknetNet& net) {
  std::ostringstream o;
  o << "# written by gemel from " << net.source << "\n"
    << "[net]\nbatch=16\nsubdivisions=1\nwidth=" << net.width << "\nheight=" << net.height
    << "\nchannels=" << net.channels
    << "\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.001\nburn_in=1000\nmax_batches=500200\n"
       "policy=steps\nsteps=400000,450000\nscales=.1,.1\n";
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    const auto& l = net.layers[i];
    const int at = static_cast<int>(i);
    switch (l.type) {
      case DarknetLayerType::kConvolutional:
        o << "\n[convolutional]\n";
        if (l.batch_normalize) o << "batch_normalize=1\n";
        o << "filters=" << l.filters << "\nsize=" << l.size << "\nstride=" << l.stride
          << "\npad=" << (l.padding > 0 ? 1 : 0) << "\nactivation=" << l.activation << "\n";
        break;
      case DarknetLayerType::kShortcut:
        o << "\n[shortcut]\nfrom=" << (l.from - at) << "\nactivation=linear\n";
        break;
      case DarknetLayerType::kRoute: {
        o << "\n[route]\nlayers=";
        for (std::size_t k = 0; k < l.layers.size(); ++k) {
          o << (k ? "," : "") << (l.layers[k] < at ? l.layers[k] - at : l.layers[k]);
        }
        o << "\n";
        break;
      }
      case DarknetLayerType::kUpsample:
        o << "\n[upsample]\nstride=" << l.stride << "\n";
        break;
      case DarknetLayerType::kMaxpool:
        o << "\n[maxpool]\nsize=" << l.size << "\nstride=" << l.stride << "\n";
        break;
      case DarknetLayerType::kYolo: {
        o << "\n[yolo]\nmask=";
        for (std::size_t k = 0; k < l.mask.size(); ++k) o << (k ? "," : "") << l.mask[k];
        o << "\nanchors=";
        for (std::size_t k = 0; k < l.anchors.size(); ++k) {
          o << (k ? ", " : "") << l.anchors[k].first << "," << l.anchors[k].second;
        }
        o << "\nclasses=" << l.classes << "\nnum=" << l.anchors.size() << "\n";
        break;
      }
    }
  }
  return o.str();
}

}  // namespace gemel::models
