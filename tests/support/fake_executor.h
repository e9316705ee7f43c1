#pragma once
// A scripted TrialExecutor for the merge policy's unit tests. A task's "weights" are its score:
// train() sets the scores the script gives, validate() reads them back, and the accepted and
// staged states hold copies, so what the coordinator restores, stages and accepts shows up in
// the scores it then sees. Every call is logged for the tests to check the order of events.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gemel/merge/executor.h"
#include "gemel/merge/trial_rules.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::testing {

class FakeExecutor final : public merge::TrialExecutor {
 public:
  struct TrainCall {
    int index = 0;  // 0-based, over every train() call
    merge::SharingPlan plan;
    train::TrainOptions options;
    std::set<int> candidates;
    std::vector<double> scores;  // every task's score when the call starts
  };
  struct Event {
    std::string what;  // apply, train, validate, accept, stage, restore, record
    merge::SharingPlan plan;
    std::string label;  // train and validate: the options' label
    From from = From::kAccepted;
    std::vector<int> rank;
    std::set<int> tasks;
  };
  // New scores for some tasks (the rest keep theirs); a NaN anywhere is a non-finite loss.
  using TrainScript = std::function<std::map<int, double>(const TrainCall&)>;
  // Scores the validation sees instead of the current ones (empty map: the current ones).
  using ValidateScript = std::function<std::map<int, double>(const Event&)>;

  FakeExecutor(merge::LayerCatalog catalog, std::vector<double> unmerged)
      : catalog_(std::move(catalog)),
        current_(unmerged),
        accepted_(unmerged),
        staged_(unmerged),
        committed_(unmerged),
        result_(unmerged),
        base_(unmerged),
        unmerged_(std::move(unmerged)) {}

  // Instead of on_train: the scores of each validation in training (the first one is the
  // trial's start, then one per half epoch), judged by the search's own rules
  // (merge::judgeValidation, as the trainer judges them): the trial ends where the rules end
  // it, with their drops, their reason and the scores of its last validation.
  using ValidationsScript = std::function<std::vector<std::map<int, double>>(const TrainCall&)>;
  ValidationsScript on_validations;

  TrainScript on_train;
  ValidateScript on_validate;
  std::vector<Event> events;
  std::vector<TrainCall> trains;
  std::vector<io::Results> records;  // a copy per record() call, weights left out

  int tasks() const override { return static_cast<int>(unmerged_.size()); }
  const merge::LayerCatalog& catalog() const override { return catalog_; }
  int ranks() const override { return 1; }
  std::vector<int> ranksOf(const std::set<int>&) const override { return {0}; }
  const std::vector<double>& current() const { return current_; }
  const std::vector<double>& acceptedScores() const { return accepted_; }
  const std::vector<double>& targets() const { return targets_; }
  int count(const std::string& what) const {
    int n = 0;
    for (const auto& e : events) n += e.what == what;
    return n;
  }

  std::vector<double> measure(const std::vector<int>& tasks) override {
    std::vector<double> out;
    for (const int t : tasks) out.push_back(unmerged_[t]);
    return out;
  }
  void setTargets(const std::vector<double>& targets) override { targets_ = targets; }

  void apply(const merge::SharingPlan& plan, From from, const merge::SharingPlan&,
             const std::vector<int>& rank) override {
    current_ = from == From::kAccepted ? accepted_ : staged_;
    events.push_back({"apply", plan, "", from, rank, {}});
  }

  train::TrialResult train(const merge::SharingPlan& plan, const train::TrainOptions& options,
                           const std::set<int>& candidates) override {
    TrainCall call{static_cast<int>(trains.size()), plan, options, candidates, current_};
    trains.push_back(call);
    events.push_back({"train", plan, options.label, From::kAccepted, {}, plan.models()});
    train::TrialResult r;
    if (on_validations) return judged(call, options, candidates);
    if (on_train) {
      for (const auto& [t, score] : on_train(call)) {
        if (std::isnan(score))
          r.nan_loss = true;
        else
          current_[t] = score;
      }
    }
    for (const int t : plan.models()) {
      r.scores.push_back(current_[t]);
      r.met.push_back(current_[t] >= targets_[t]);  // as scored, NaN or not
      r.dropped.push_back(false);
    }
    r.steps = 10;
    if (r.nan_loss) r.ended = "the loss is not finite (NaN)";
    return r;
  }

  train::TrialResult judged(const TrainCall& call, const train::TrainOptions& options,
                            const std::set<int>& candidates) {
    const auto models = call.plan.models();
    const std::vector<int> order(models.begin(), models.end());
    train::TrialResult r;
    r.dropped.assign(order.size(), false);
    const auto rules = train::rulesOf(options);
    std::vector<double> start, previous;
    const auto validations = on_validations(call);
    for (std::size_t k = 0; k < validations.size(); ++k) {
      for (const auto& [t, score] : validations[k]) current_[t] = score;
      ++r.validations;
      if (k == 0) {
        for (const int t : order) start.push_back(current_[t]);
        previous = start;
        continue;
      }
      std::vector<merge::TaskAtValidation> seen;
      for (std::size_t i = 0; i < order.size(); ++i) {
        const int t = order[i];
        merge::TaskAtValidation a;
        a.name = std::to_string(t);
        a.score = current_[t];
        a.target = targets_[t];
        a.start_score = start[i];
        a.previous_score = previous[i];
        a.candidate = candidates.count(t) > 0;
        a.dropped = r.dropped[i];
        if (static_cast<std::size_t>(t) < options.collapse_floor.size())
          a.collapse_floor = options.collapse_floor[static_cast<std::size_t>(t)];
        seen.push_back(a);
        previous[i] = current_[t];
      }
      const double epochs = 0.5 * static_cast<double>(k);
      const auto verdict = merge::judgeValidation(
          seen, {r.validations, epochs, epochs - 0.5, options.epochs - epochs}, rules);
      r.dropped = verdict.dropped;
      r.ended = verdict.ended;
      r.steps = 5 * static_cast<int64_t>(k);
      if (!r.ended.empty()) break;
    }
    for (const int t : order) {
      r.scores.push_back(current_[t]);
      r.met.push_back(current_[t] >= targets_[t]);
    }
    return r;
  }

  std::vector<double> validate(const merge::SharingPlan& plan, const std::set<int>& tasks,
                               const train::TrainOptions& options) override {
    events.push_back({"validate", plan, options.label, From::kAccepted, {}, tasks});
    std::map<int, double> seen;
    if (on_validate) seen = on_validate(events.back());
    for (const auto& [t, score] : seen) current_[t] = score;
    std::vector<double> out;
    for (const int t : tasks) out.push_back(current_[t]);
    return out;
  }

  void accept() override {
    accepted_ = current_;
    events.push_back({"accept", {}, "", From::kAccepted, {}, {}});
  }
  void stage(const std::set<int>& reverted) override {
    staged_ = current_;
    for (const int t : reverted) staged_[t] = accepted_[t];
    events.push_back({"stage", {}, "", From::kAccepted, {}, reverted});
  }
  void restore(const io::Results& previous) override {
    for (int t = 0; t < tasks(); ++t) current_[t] = previous.tasks[t].final_score;
    events.push_back({"restore", {}, "", From::kAccepted, {}, {}});
  }
  void record(io::Results& results, const merge::SharingPlan& accepted,
              const merge::TaskScores& scores) override {
    results.plan_json = accepted.json();
    results.achieved_savings = accepted.bytesSaved(catalog_);
    results.tasks.resize(unmerged_.size());
    for (std::size_t t = 0; t < unmerged_.size(); ++t) {
      auto& rec = results.tasks[t];
      rec.name = catalog_.models()[t].name;
      rec.arch = catalog_.models()[t].arch;
      rec.unmerged_score = scores.unmerged[t];
      rec.target = scores.target[t];
      rec.final_score = scores.current[t];
    }
    records.push_back(results);
    events.push_back({"record", accepted, results.status, From::kAccepted, {}, {}});
  }

  // Parallel trials: the committed state and this rank's held result, as scores too.
  void settle() override {
    committed_ = accepted_;
    events.push_back({"settle", {}, "", From::kAccepted, {}, {}});
  }
  void hold(bool trained = true) override {
    if (trained) base_ = committed_;
    result_ = accepted_;
    accepted_ = committed_;
    current_ = accepted_;
    events.push_back({"hold", {}, "", From::kAccepted, {}, {}});
  }
  // Each root's held scores travel as text: "task=score;..." (exact: %a).
  void adopt(const std::map<int, int>& roots, const dist::World& world) override {
    std::map<int, std::set<int>> by_root;
    for (const auto& [t, root] : roots) by_root[root].insert(t);
    for (const auto& [root, tasks] : by_root) {
      std::string text;
      if (world.rank() == root) {
        for (const int t : tasks) {
          char value[64];
          std::snprintf(value, sizeof value, "%a", result_[static_cast<std::size_t>(t)]);
          text += std::to_string(t) + "=" + value + ";";
        }
      }
      text = world.share(text, root);
      std::size_t at = 0;
      while (at < text.size()) {
        const auto eq = text.find('=', at), end = text.find(';', at);
        const auto t = static_cast<std::size_t>(std::stoi(text.substr(at, eq - at)));
        committed_[t] = accepted_[t] =
            std::strtod(text.substr(eq + 1, end - eq - 1).c_str(), nullptr);
        at = end + 1;
      }
      adopted.push_back({root, tasks});
      events.push_back({"adopt", {}, "", From::kAccepted, {root}, tasks});
    }
  }
  // A group: every member runs the trial's script alone (the scores are the "weights"), and
  // group rank 0 holds every task.
  void bind(const dist::World& group, const std::set<int>& tasks) override {
    bound.push_back({group.size(), tasks});
    events.push_back({"bind", {}, "", From::kAccepted, {group.rank(), group.size()}, tasks});
  }
  void unbind() override { events.push_back({"unbind", {}, "", From::kAccepted, {}, {}}); }
  int holder(int) const override { return 0; }
  std::vector<std::pair<int, std::set<int>>> bound;  // (group size, tasks) per bind()
  // A delta-combined task's score: the committed one plus what the trial added to it.
  void stageGraft(const std::set<int>& from_result, const std::set<int>& with_delta) override {
    staged_ = accepted_;
    for (const int t : from_result)
      staged_[static_cast<std::size_t>(t)] = result_[static_cast<std::size_t>(t)];
    for (const int t : with_delta) {
      const auto k = static_cast<std::size_t>(t);
      staged_[k] = accepted_[k] + result_[k] - base_[k];
    }
    events.push_back({"graft", {}, "", From::kStaged, {}, from_result});
  }
  std::vector<std::pair<int, std::set<int>>> adopted;  // (root, tasks) per adopt()
  const std::vector<double>& committedScores() const { return committed_; }

 private:
  merge::LayerCatalog catalog_;
  std::vector<double> current_, accepted_, staged_, committed_, result_, base_;
  std::vector<double> unmerged_, targets_;
};

}  // namespace gemel::testing
