#pragma once
// Ranks as threads of one process, for testing distributed code without mpirun: a
// Communicator per thread over shared slots, and the integer sums and maxima the trainer
// agrees on. Every collective is two barriers: deposit, then read and write back, so every
// rank computes the same sum in the same order (rank 0 first).
#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gemel/dist/communicator.h"
#include "gemel/dist/world.h"

namespace gemel::testing {

class ThreadRanks {
 public:
  // Every per-rank slot exists from the start: a thread must never size one while another
  // reads it (a lazily sized slot raced in the first share of a group made by split).
  explicit ThreadRanks(int n)
      : n_(n),
        texts_(static_cast<std::size_t>(n), nullptr),
        slots_(n, nullptr),
        ints_(n, nullptr) {}
  int size() const { return n_; }

  // Runs body(rank) on n threads and waits for them.
  void run(const std::function<void(int rank)>& body) {
    std::vector<std::thread> threads;
    for (int r = 0; r < n_; ++r) threads.emplace_back(body, r);
    for (auto& t : threads) t.join();
  }

  std::unique_ptr<dist::Communicator> communicator(int rank);

  void sum(std::vector<int64_t>& values, int rank) {
    ints_[rank] = &values;
    barrier();
    std::vector<int64_t> total(values.size(), 0);
    for (int r = 0; r < n_; ++r) {
      for (std::size_t i = 0; i < total.size(); ++i) total[i] += (*ints_[r])[i];
    }
    barrier();
    values = total;
  }
  int64_t max(int64_t value, int rank) {
    std::vector<int64_t> all(n_, 0);
    all[rank] = value;
    sum(all, rank);
    int64_t m = all[0];
    for (const auto v : all) m = std::max(m, v);
    return m;
  }

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto generation = generation_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

  std::vector<torch::Tensor*>& slots() { return slots_; }

  // World::split over these threads (collective): the group of the threads that pass the same
  // color (>= 0), ranked by key then rank, and this thread's rank in it; nullptr for color < 0.
  std::shared_ptr<ThreadRanks> split(int color, int key, int rank, int& group_rank) {
    std::vector<int64_t> pairs(static_cast<std::size_t>(2 * n_), 0);
    pairs[static_cast<std::size_t>(2 * rank)] = color;
    pairs[static_cast<std::size_t>(2 * rank + 1)] = key;
    sum(pairs, rank);
    std::vector<std::pair<int64_t, int>> members;  // (key, rank) of this color
    for (int r = 0; r < n_; ++r) {
      if (pairs[static_cast<std::size_t>(2 * r)] == color) {
        members.emplace_back(pairs[static_cast<std::size_t>(2 * r + 1)], r);
      }
    }
    std::sort(members.begin(), members.end());
    std::shared_ptr<ThreadRanks> group;
    if (color >= 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& made = groups_[{splits_, color}];
      if (!made) made = std::make_shared<ThreadRanks>(static_cast<int>(members.size()));
      group = made;
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (members[i].second == rank) group_rank = static_cast<int>(i);
      }
    }
    barrier();
    if (rank == 0) ++splits_;  // the next split's groups are new ones
    barrier();
    return group;
  }

  // Root's text on every rank.
  std::string share(const std::string& text, int root, int rank) {
    texts_[static_cast<std::size_t>(rank)] = &text;
    barrier();
    std::string copy = *texts_[static_cast<std::size_t>(root)];
    barrier();
    return copy;
  }
  // Point to point, matched by (source, dest, tag), in order.
  void send(const std::vector<char>& bytes, int source, int dest, int tag) {
    std::lock_guard<std::mutex> lock(mutex_);
    mail_[{source, dest, tag}].push_back(bytes);
    cv_.notify_all();
  }
  std::vector<char> receive(int source, int dest, int tag) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& box = mail_[{source, dest, tag}];
    cv_.wait(lock, [&] { return !box.empty(); });
    auto bytes = std::move(box.front());
    box.erase(box.begin());
    return bytes;
  }

 private:
  int n_;
  std::vector<const std::string*> texts_;
  std::map<std::tuple<int, int, int>, std::vector<std::vector<char>>> mail_;
  std::vector<torch::Tensor*> slots_;
  std::vector<std::vector<int64_t>*> ints_;
  std::map<std::pair<int64_t, int>, std::shared_ptr<ThreadRanks>> groups_;  // (split, color)
  int64_t splits_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int64_t generation_ = 0;
};

// One thread's view of the group.
class ThreadCommunicator final : public dist::Communicator {
 public:
  ThreadCommunicator(ThreadRanks& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  std::string backend() const override { return "threads"; }
  void allreduceSum(torch::Tensor& t) override {
    group_.slots()[rank_] = &t;
    group_.barrier();
    auto total = group_.slots()[0]->clone();
    for (int r = 1; r < group_.size(); ++r) total.add_(*group_.slots()[r]);
    group_.barrier();
    t.copy_(total);
  }
  void broadcast(torch::Tensor& t, int root) override {
    group_.slots()[rank_] = &t;
    group_.barrier();
    auto value = group_.slots()[root]->clone();
    group_.barrier();
    if (rank_ != root) t.copy_(value);
  }

 private:
  ThreadRanks& group_;
  int rank_;
};

// One thread's dist::World: the agreement calls of code under test, over the group.
class ThreadWorld final : public dist::World {
 public:
  ThreadWorld(ThreadRanks& group, int rank) : group_(group), rank_(rank) {}
  // A group made by split, which this world keeps alive.
  ThreadWorld(std::shared_ptr<ThreadRanks> group, int rank)
      : owned_(std::move(group)), group_(*owned_), rank_(rank) {}
  std::unique_ptr<dist::World> split(int color, int key) const override {
    int group_rank = 0;
    auto group = group_.split(color, key, rank_, group_rank);
    if (!group) return nullptr;
    return std::make_unique<ThreadWorld>(std::move(group), group_rank);
  }
  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  std::string share(std::string text, int root) const override {
    return group_.share(text, root, rank_);
  }
  void sum(std::vector<int64_t>& values) const override { group_.sum(values, rank_); }
  int64_t max(int64_t value) const override { return group_.max(value, rank_); }
  void send(const std::vector<char>& bytes, int dest, int tag) const override {
    group_.send(bytes, rank_, dest, tag);
  }
  std::vector<char> receive(int source, int tag) const override {
    return group_.receive(source, rank_, tag);
  }

 private:
  std::shared_ptr<ThreadRanks> owned_;
  ThreadRanks& group_;
  int rank_;
};

inline std::unique_ptr<dist::Communicator> ThreadRanks::communicator(int rank) {
  return std::make_unique<ThreadCommunicator>(*this, rank);
}

}  // namespace gemel::testing
