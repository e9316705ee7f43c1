#pragma once
// A minimal streaming JSON writer for the commands' --json output. Commas and nesting are
// tracked here so that callers cannot produce malformed JSON.
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace gemel {

class JsonWriter {
 public:
  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(static_cast<int64_t>(number)); }
  JsonWriter& value(double number);
  JsonWriter& value(bool flag);
  JsonWriter& null();

  std::string str() const { return out_.str(); }
  static std::string quote(std::string_view text);

 private:
  void separate();
  std::ostringstream out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace gemel
