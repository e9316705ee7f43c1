#pragma once
// The catalog's view of a built model (LibTorch side of the catalog, in gemel_core; the catalog
// itself needs no LibTorch).
#include <string>

#include "gemel/merge/catalog.h"

namespace gemel::models {
class Model;
}

namespace gemel::merge {

// Describes a built model for the catalog: its shareable layers and its total bytes.
CatalogModel describeModel(const std::string& name, const models::Model& model);

}  // namespace gemel::merge
