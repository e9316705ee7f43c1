#pragma once
// World: how the ranks of one job agree on everything but gradients (GradSync carries those).
// Protocol: every rank makes the same calls in the same order; a call returns on a rank once
// that rank's part of it is done (share, sum, concat and max are collectives over every rank;
// send and receive pair one rank with another, matched by tag).
//
// Implementations: SingleWorld (one process: every call returns at once), MpiWorld (the MPI
// job, or a group of its ranks, over an MPI communicator of its own), and ThreadWorld in the
// tests (tests/support/thread_ranks.h). Code that agrees between ranks takes a `const World&`;
// only main() touches the process-wide Cluster.
//
// Rank groups: split(color, key), as c10d's new_group or MPI_Comm_split, makes the ranks that
// pass the same color a World of their own, ranked by key (then by rank here). A group's calls
// reach its members only, so groups can agree, each within itself, at the same time.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gemel::dist {

class Cluster;

class World {
 public:
  virtual ~World() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool lead() const { return rank() == 0; }
  // This rank among the ranks on its host, and how many there are (GPUs, threads per rank).
  virtual int localRank() const { return 0; }
  virtual int localSize() const { return 1; }

  // Every rank returns root's text (any bytes).
  virtual std::string share(std::string text, int root = 0) const = 0;
  // Element-wise sums over every rank, in place (every rank passes the same length).
  virtual void sum(std::vector<int64_t>& values) const = 0;
  virtual int64_t max(int64_t value) const = 0;
  // Bytes from this rank to `dest`, and from `source` to this rank, matched by tag.
  virtual void send(const std::vector<char>& bytes, int dest, int tag) const = 0;
  virtual std::vector<char> receive(int source, int tag) const = 0;

  // Collective over every rank of this World: this rank's group of the ranks that pass the
  // same `color` (>= 0), ranked by `key`, then by rank; nullptr for a color < 0 (no group).
  virtual std::unique_ptr<World> split(int color, int key) const = 0;

  // Every rank's values one after another, in rank order, on every rank (lengths may differ).
  void concat(std::vector<int64_t>& values) const;
  // Returns once every rank has called it.
  void barrier() const { max(0); }
};

// A world of one process.
class SingleWorld final : public World {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string share(std::string text, int) const override { return text; }
  void sum(std::vector<int64_t>&) const override {}
  int64_t max(int64_t value) const override { return value; }
  void send(const std::vector<char>&, int dest, int tag) const override;
  std::vector<char> receive(int source, int tag) const override;
  std::unique_ptr<World> split(int color, int key) const override;
};

// The MPI job this process belongs to (rank 0 of 1, MPI untouched, when not started by a
// launcher), or a group of its ranks (split). Each holds its own MPI communicator, freed with
// it; its collectives are MPI's on that communicator.
class MpiWorld final : public World {
 public:
  // The whole job (MPI_COMM_WORLD), once Cluster::init() ran.
  explicit MpiWorld(const Cluster& cluster);
  ~MpiWorld() override;
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int localRank() const override { return local_rank_; }
  int localSize() const override { return local_size_; }
  std::string share(std::string text, int root) const override;
  void sum(std::vector<int64_t>& values) const override;
  int64_t max(int64_t value) const override;
  void send(const std::vector<char>& bytes, int dest, int tag) const override;
  std::vector<char> receive(int source, int tag) const override;
  std::unique_ptr<World> split(int color, int key) const override;
  // The communicator as MPI_Comm_c2f gives it (for the dist module's own communicators).
  int fortranHandle() const { return handle_; }

 private:
  MpiWorld() = default;
  bool mpi_ = false;    // false: a process without a launcher (rank 0 of 1)
  bool owned_ = false;  // a group's communicator, freed with it (not MPI_COMM_WORLD)
  int handle_ = 0;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace gemel::dist
