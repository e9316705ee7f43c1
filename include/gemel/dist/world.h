#pragma once
// World: how the ranks of one job agree on everything but gradients (GradSync carries those).
// Protocol: every rank makes the same calls in the same order; a call returns on a rank once
// that rank's part of it is done (share, sum, concat and max are collectives over every rank;
// send and receive pair one rank with another, matched by tag).
//
// Implementations: SingleWorld (one process: every call returns at once), ClusterWorld (the
// MPI job, over dist::Cluster), and ThreadWorld in the tests (tests/support/thread_ranks.h). Code
// that agrees between ranks takes a `const World&`; only main() touches the process-wide Cluster.
#include <cstdint>
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
};

// The MPI job this process belongs to (rank 0 of 1 when not started by a launcher).
class ClusterWorld final : public World {
 public:
  explicit ClusterWorld(const Cluster& cluster) : cluster_(cluster) {}
  int rank() const override;
  int size() const override;
  int localRank() const override;
  int localSize() const override;
  std::string share(std::string text, int root) const override;
  void sum(std::vector<int64_t>& values) const override;
  int64_t max(int64_t value) const override;
  void send(const std::vector<char>& bytes, int dest, int tag) const override;
  std::vector<char> receive(int source, int tag) const override;

 private:
  const Cluster& cluster_;
};

}  // namespace gemel::dist
