#include "gemel/merge/wire.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "gemel/core/error.h"

namespace gemel::merge::wire {
namespace {

std::vector<int> parseInts(const std::string& text) {
  std::vector<int> out;
  for (const int64_t v : unpackInts(text)) out.push_back(static_cast<int>(v));
  return out;
}

std::string joinInts(const std::vector<int>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out;
}

}  // namespace

std::string packInts(const std::vector<int64_t>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out;
}

std::vector<int64_t> unpackInts(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(std::stoll(item));
  }
  return out;
}

std::string packDoubles(const std::vector<double>& values) {
  std::string out;
  for (const double v : values) {
    char value[64];
    std::snprintf(value, sizeof value, "%s%a", out.empty() ? "" : ",", v);
    out += value;
  }
  return out;
}

std::vector<double> unpackDoubles(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(std::strtod(item.c_str(), nullptr));
  }
  return out;
}

// A model's shareable layers, as its owner describes them: "name\tarch\ttotal_bytes", then per
// layer "module\tkind\thyper\tbytes\tparam=d0,d1;param=d0".
std::string pack(const merge::CatalogModel& m) {
  std::ostringstream o;
  o << m.name << '\t' << m.arch << '\t' << m.total_bytes << '\n';
  for (const auto& l : m.layers) {
    o << l.module << '\t' << static_cast<int>(l.kind) << '\t' << l.hyper << '\t' << l.bytes << '\t';
    for (std::size_t i = 0; i < l.params.size(); ++i) {
      o << (i ? ";" : "") << l.params[i] << '=';
      for (std::size_t d = 0; d < l.shapes[i].size(); ++d) o << (d ? "," : "") << l.shapes[i][d];
    }
    o << '\n';
  }
  return o.str();
}

merge::CatalogModel unpackCatalogModel(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  merge::CatalogModel m;
  std::getline(in, line);
  std::istringstream head(line);
  std::getline(head, m.name, '\t');
  std::getline(head, m.arch, '\t');
  head >> m.total_bytes;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    models::LayerInfo l;
    std::string kind, bytes, params;
    std::getline(ls, l.module, '\t');
    std::getline(ls, kind, '\t');
    std::getline(ls, l.hyper, '\t');
    std::getline(ls, bytes, '\t');
    std::getline(ls, params, '\t');
    l.kind = static_cast<models::LayerKind>(std::stoi(kind));
    l.bytes = std::stoll(bytes);
    std::istringstream ps(params);
    std::string p;
    while (std::getline(ps, p, ';')) {
      const auto eq = p.find('=');
      l.params.push_back(p.substr(0, eq));
      std::vector<int64_t> shape;
      std::istringstream ds(p.substr(eq + 1));
      std::string d;
      while (std::getline(ds, d, ',')) shape.push_back(std::stoll(d));
      l.shapes.push_back(shape);
    }
    m.layers.push_back(std::move(l));
  }
  return m;
}

// "group,instance:model,model;..." per shared instance.
std::string pack(const merge::SharingPlan& plan) {
  std::string out;
  for (const auto& [key, models] : plan.instances()) {
    if (!out.empty()) out += ";";
    out += std::to_string(key.first) + "," + std::to_string(key.second) + ":" +
           joinInts({models.begin(), models.end()});
  }
  return out;
}

merge::SharingPlan unpackPlan(const std::string& text) {
  merge::SharingPlan plan;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ';')) {
    const auto colon = item.find(':');
    GEMEL_ASSERT(colon != std::string::npos, "malformed sharing plan: " + text);
    const auto key = parseInts(item.substr(0, colon));
    const auto models = parseInts(item.substr(colon + 1));
    GEMEL_ASSERT(key.size() == 2, "malformed sharing plan: " + text);
    std::vector<int> sorted(models);
    std::sort(sorted.begin(), sorted.end());
    plan.add({key[0], {key[1]}, sorted});
  }
  return plan;
}

// "number|bytes_saved|pass|label", then per part "group;instance,...;model,...".
std::string pack(const merge::Trial& t) {
  std::string out = std::to_string(t.number) + "|" + std::to_string(t.bytes_saved) + "|" +
                    std::to_string(t.pass) + "|" + t.label;
  for (const auto& p : t.parts) {
    out += "\n" + std::to_string(p.group) + ";" + joinInts(p.instances) + ";" + joinInts(p.models);
  }
  return out;
}

merge::Trial unpackTrial(const std::string& text) {
  merge::Trial t;
  std::stringstream ss(text);
  std::string line;
  std::getline(ss, line);
  const auto a = line.find('|'), b = line.find('|', a + 1), c = line.find('|', b + 1);
  GEMEL_ASSERT(a != std::string::npos && b != std::string::npos && c != std::string::npos,
               "malformed trial: " + text);
  t.number = std::stoi(line.substr(0, a));
  t.bytes_saved = std::stoll(line.substr(a + 1, b - a - 1));
  t.pass = std::stoi(line.substr(b + 1, c - b - 1));
  t.label = line.substr(c + 1);
  while (std::getline(ss, line)) {
    std::stringstream ls(line);
    std::string g, i, m;
    std::getline(ls, g, ';');
    std::getline(ls, i, ';');
    std::getline(ls, m, ';');
    t.parts.push_back({std::stoi(g), parseInts(i), parseInts(m)});
  }
  return t;
}

}  // namespace gemel::merge::wire
