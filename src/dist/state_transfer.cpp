#include "gemel/dist/state_transfer.h"

#include <torch/torch.h>

#include <cstring>

#include "gemel/core/error.h"

namespace gemel::dist {

std::vector<models::StateDict> gatherStates(const World& world,
                                            const std::vector<models::StateDict>& states,
                                            const std::vector<int>& owners) {
  std::vector<models::StateDict> all(states.size());
  const int me = world.rank();
  for (std::size_t t = 0; t < states.size(); ++t) {
    const int owner = owners[t];
    const int tag = 100 + static_cast<int>(t);
    if (owner == 0) {
      if (me == 0) all[t] = states[t];
    } else if (me == owner) {
      world.send(packState(states[t]), 0, tag);
    } else if (me == 0) {
      all[t] = unpackState(world.receive(owner, tag));
    }
  }
  return all;
}

std::vector<char> packState(const models::StateDict& state) {
  std::vector<char> out;
  auto put = [&](const void* p, std::size_t n) {
    out.insert(out.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n);
  };
  const int64_t count = static_cast<int64_t>(state.size());
  put(&count, sizeof count);
  for (const auto& [name, tensor] : state) {
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    const int64_t len = static_cast<int64_t>(name.size()),
                  type = static_cast<int64_t>(t.scalar_type()), dims = t.dim();
    put(&len, sizeof len);
    put(name.data(), name.size());
    put(&type, sizeof type);
    put(&dims, sizeof dims);
    for (const auto d : t.sizes()) put(&d, sizeof d);
    put(t.data_ptr(), t.numel() * t.element_size());
  }
  return out;
}

models::StateDict unpackState(const std::vector<char>& bytes) {
  std::size_t at = 0;
  auto get = [&](void* p, std::size_t n) {
    GEMEL_ASSERT(at + n <= bytes.size(), "truncated weights message");
    std::memcpy(p, bytes.data() + at, n);
    at += n;
  };
  int64_t count = 0;
  get(&count, sizeof count);
  models::StateDict state;
  for (int64_t i = 0; i < count; ++i) {
    int64_t len = 0, type = 0, dims = 0;
    get(&len, sizeof len);
    std::string name(static_cast<std::size_t>(len), '\0');
    get(name.data(), name.size());
    get(&type, sizeof type);
    get(&dims, sizeof dims);
    std::vector<int64_t> sizes(static_cast<std::size_t>(dims));
    for (auto& d : sizes) get(&d, sizeof d);
    auto t =
        torch::empty(sizes, torch::TensorOptions().dtype(static_cast<torch::ScalarType>(type)));
    get(t.data_ptr(), t.numel() * t.element_size());
    state.emplace_back(std::move(name), std::move(t));
  }
  return state;
}

}  // namespace gemel::dist
