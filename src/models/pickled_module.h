#pragma once
// Whole torchvision modules pickled with torch.save(model), as the original Gemel's model files
// hold them, read without Python: the parameters and persistent buffers by module path (the
// names model.state_dict() gives), and the gemel arch from the pickled classes and block counts.
#include <string>

#include "gemel/models/state_dict.h"
#include "pickle_reader.h"

namespace gemel::models {

// Whether the unpickled root is an nn.Module (an object whose state has _modules).
bool isPickledModule(const pickle::ValuePtr& root);

// The module's state_dict and arch. Throws InputError naming `source` and the class for a
// class gemel does not build (or a torchvision class in a configuration it does not build).
WeightsFile readPickledModule(const pickle::ValuePtr& root, const std::string& source);

}  // namespace gemel::models
