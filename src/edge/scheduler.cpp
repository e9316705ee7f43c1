#include "gemel/edge/scheduler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "gemel/core/error.h"

namespace gemel::edge {

int64_t ModelProfile::residentBytes() const {
  int64_t n = 0;
  for (const auto& b : blocks) n += b.bytes;
  return n;
}

int64_t SimulationResult::processed() const {
  int64_t n = 0;
  for (const auto& s : streams) n += s.processed;
  return n;
}

int64_t SimulationResult::skipped() const {
  int64_t n = 0;
  for (const auto& s : streams) n += s.skipped;
  return n;
}

std::vector<ModelProfile> unmerged(const std::vector<ModelProfile>& models) {
  auto out = models;
  for (auto& m : out) {
    for (auto& b : m.blocks) b.id = m.name + "/" + b.id;
  }
  return out;
}

namespace {

void checkProfile(const ModelProfile& m) {
  GEMEL_THROW_IF_NOT(!m.batch_sizes.empty() && m.latency_seconds.size() == m.batch_sizes.size() &&
                         m.run_bytes.size() == m.batch_sizes.size(),
                     InputError,
                     "model '{}': its profile needs a latency and a run memory for each of its "
                     "batch sizes",
                     m.name);
  for (std::size_t i = 0; i < m.batch_sizes.size(); ++i) {
    GEMEL_THROW_IF_NOT(m.batch_sizes[i] > 0 && (i == 0 || m.batch_sizes[i] > m.batch_sizes[i - 1]),
                       InputError, "model '{}': batch sizes must be positive and ascending",
                       m.name);
  }
}

// The batch a turn runs with `waiting` frames: (index into the profile's sizes, frames taken).
std::pair<std::size_t, int64_t> chooseBatch(const ModelProfile& m, int64_t waiting, int fixed,
                                            int64_t room) {
  const auto& sizes = m.batch_sizes;
  std::size_t at = 0;
  int64_t take = 0;
  if (fixed > 0) {
    take = std::min<int64_t>(fixed, waiting);
    // The smallest profiled size that holds the batch (a partial batch runs padded).
    at = sizes.size() - 1;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] >= take) {
        at = i;
        break;
      }
    }
    take = std::min<int64_t>(take, sizes[at]);
  } else {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i] <= waiting) at = i;
    }
    take = std::min<int64_t>(sizes[at], waiting);
  }
  // A batch whose run memory does not fit beside the weights shrinks.
  while (at > 0 && m.run_bytes[at] > room) {
    --at;
    take = std::min<int64_t>(take, sizes[at]);
  }
  return {at, take};
}

// The blocks in memory (block id -> bytes).
struct Residency {
  std::map<std::string, int64_t> blocks;
  int64_t bytes = 0;

  void add(const ModelProfile& m) {
    for (const auto& b : m.blocks) {
      if (blocks.emplace(b.id, b.bytes).second) bytes += b.bytes;
    }
  }
  // Before the first frame: the models in order, while they fit with room to run any of them.
  void preload(const std::vector<ModelProfile>& models, int64_t budget) {
    int64_t reserve = 0;
    for (const auto& m : models) reserve = std::max(reserve, m.run_bytes[0]);
    for (const auto& m : models) {
      int64_t missing = 0;
      for (const auto& b : m.blocks) missing += blocks.count(b.id) ? 0 : b.bytes;
      if (bytes + missing + reserve <= budget) add(m);
    }
  }
  // Makes room for model m (whose blocks are `mine`): of the other models that still hold a
  // block m does not use, the one whose round-robin turn comes last loses those blocks (the
  // furthest next use: round-robin's optimal eviction; least-recently-run would evict the very
  // model that runs next, every turn).
  void evictOne(const std::vector<ModelProfile>& models, std::size_t m,
                const std::set<std::string>& mine) {
    const std::size_t n = models.size();
    std::size_t victim = n;
    for (std::size_t v = 0; v < n; ++v) {
      if (v == m) continue;
      bool holds = false;
      for (const auto& b : models[v].blocks)
        holds = holds || (blocks.count(b.id) && !mine.count(b.id));
      if (holds && (victim == n || (v + n - m) % n > (victim + n - m) % n)) victim = v;
    }
    GEMEL_ASSERT(victim < n, "eviction found nothing to evict, yet the model fits alone");
    for (const auto& b : models[victim].blocks) {
      const auto it = blocks.find(b.id);
      if (it == blocks.end() || mine.count(b.id)) continue;
      bytes -= it->second;
      blocks.erase(it);
    }
  }
};

void checkSimulation(const std::vector<ModelProfile>& models, const SimulationOptions& o) {
  GEMEL_THROW_IF_NOT(!models.empty(), UsageError, "nothing to simulate: no models");
  GEMEL_THROW_IF_NOT(o.fps > 0 && o.sla_seconds > 0 && o.frames > 0 && o.batch >= 0, UsageError,
                     "--fps, --sla and --frames must be positive, --batch 0 (auto) or more");
  for (const auto& m : models) {
    checkProfile(m);
    const int64_t need = m.residentBytes() + m.run_bytes[0];
    GEMEL_THROW_IF_NOT(need <= o.memory_bytes, UsageError,
                       "--memory {} bytes: model '{}' alone needs {} bytes ({} of weights, {} to "
                       "run a batch of {}); nothing can run it; give a budget of at least {} bytes",
                       o.memory_bytes, m.name, need, m.residentBytes(), m.run_bytes[0],
                       m.batch_sizes[0], need);
  }
}

}  // namespace

SimulationResult simulate(const std::vector<ModelProfile>& models, const SimulationOptions& o) {
  checkSimulation(models, o);
  const std::size_t n = models.size();
  SimulationResult r;
  for (const auto& m : models) r.streams.push_back({m.name, 0, 0, 0});
  std::vector<int64_t> head(n, 0);  // frames before it are processed or skipped
  Residency resident;
  auto arrival = [&](int64_t k) { return double(k) / o.fps; };
  // The last frame that has arrived by time t.
  auto arrived = [&](double t) {
    return std::min<int64_t>(o.frames - 1, static_cast<int64_t>(std::floor(t * o.fps + 1e-9)));
  };
  if (o.preload) resident.preload(models, o.memory_bytes);
  double clock = 0;
  std::size_t turn = 0;
  while (true) {
    // Skip what waited too long, everywhere; find whether anything waits at all.
    bool done = true, waiting_any = false;
    for (std::size_t s = 0; s < n; ++s) {
      const int64_t last = arrived(clock);
      while (head[s] <= last && clock - arrival(head[s]) > o.sla_seconds) {
        ++head[s];
        ++r.streams[s].skipped;
      }
      done = done && head[s] >= o.frames;
      waiting_any = waiting_any || head[s] <= last;
    }
    if (done) break;
    if (!waiting_any) {
      double next = 1e300;
      for (std::size_t s = 0; s < n; ++s) {
        if (head[s] < o.frames) next = std::min(next, arrival(head[s]));
      }
      clock = std::max(clock, next);
      continue;
    }
    // The next model, round-robin, with a frame waiting.
    std::size_t m = turn % n;
    while (head[m] > arrived(clock)) m = (m + 1) % n;
    turn = m + 1;
    const auto& model = models[m];
    const int64_t waiting = arrived(clock) - head[m] + 1;
    // Residency: evict the least recently run models' blocks this model does not use.
    std::set<std::string> mine;
    int64_t missing = 0;
    double load = 0;
    for (const auto& b : model.blocks) {
      mine.insert(b.id);
      if (!resident.blocks.count(b.id)) {
        missing += b.bytes;
        load += b.load_seconds;
      }
    }
    const auto [at0, take0] =
        chooseBatch(model, waiting, o.batch, o.memory_bytes - model.residentBytes());
    while (resident.bytes + missing + model.run_bytes[at0] > o.memory_bytes)
      resident.evictOne(models, m, mine);
    if (missing > 0) {
      resident.add(model);
      ++r.loads;
      if (o.load_costs) {
        clock += load;
        r.load_seconds += load;
      }
    }
    clock += model.latency_seconds[at0];
    auto& st = r.streams[m];
    for (int64_t k = head[m]; k < head[m] + take0; ++k) {
      if (clock - arrival(k) <= o.sla_seconds) ++st.within_sla;
    }
    st.processed += take0;
    head[m] += take0;
  }
  r.end_seconds = clock;
  return r;
}

}  // namespace gemel::edge
