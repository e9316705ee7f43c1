#include <gtest/gtest.h>

#include "gemel/core/json.h"

namespace gemel {
namespace {

TEST(JsonWriter, NestsObjectsAndArraysWithCommas) {
  JsonWriter j;
  j.beginObject();
  j.key("a").value(int64_t{1});
  j.key("b").beginArray().value("x").value(true).null().endArray();
  j.key("c").beginObject().key("d").value(0.5).endObject();
  j.endObject();
  EXPECT_EQ(j.str(), R"({"a":1,"b":["x",true,null],"c":{"d":0.5}})");
}

TEST(JsonWriter, EscapesStrings) {
  EXPECT_EQ(JsonWriter::quote("a\"b\\c\nd\x01"), R"("a\"b\\c\nd\u0001")");
}

TEST(JsonWriter, NonFiniteNumbersBecomeNull) {
  JsonWriter j;
  j.beginArray().value(std::numeric_limits<double>::infinity()).endArray();
  EXPECT_EQ(j.str(), "[null]");
}

}  // namespace
}  // namespace gemel
