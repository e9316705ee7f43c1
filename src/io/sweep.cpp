#include "gemel/io/sweep.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/io/results.h"

namespace gemel::io {

namespace fs = std::filesystem;

const char* sweepStateName(SweepState state) {
  switch (state) {
    case SweepState::kFinished:
      return "finished";
    case SweepState::kCutShort:
      return "cut short";
    case SweepState::kFailed:
      return "failed";
    case SweepState::kMissing:
      return "missing";
  }
  return "?";
}

namespace {

// eval.json's all_met ("" when the file is absent or holds none).
std::string allMet(const fs::path& eval_json) {
  std::ifstream in(eval_json);
  if (!in) return "";
  std::stringstream text;
  text << in.rdbuf();
  const auto s = text.str();
  if (s.find("\"all_met\":true") != std::string::npos) return "yes";
  if (s.find("\"all_met\":false") != std::string::npos) return "no";
  return "";
}

SweepRow readMember(const std::string& name, const fs::path& results) {
  SweepRow row;
  row.name = name;
  row.path = results.string();
  std::error_code ec;
  if (!fs::exists(results, ec)) {
    row.state = SweepState::kMissing;
    row.detail =
        "no results.h5: the merge never wrote one (it did not start, or failed before "
        "its first record)";
    return row;
  }
  Results r;
  try {
    r = readResults(results.string(), false);
  } catch (const Error& e) {
    row.state = SweepState::kFailed;
    row.detail = e.what();
    return row;
  }
  row.tasks = static_cast<int>(r.tasks.size());
  row.total_bytes = r.total_bytes;
  row.possible = r.possible_savings;
  row.confirmed = r.achieved_savings;
  row.search_seconds = r.search_seconds;
  row.ended = r.ended;
  for (const auto& t : r.trials) {
    row.decisions[t.decision.substr(0, t.decision.find(' '))]++;
    ++row.trials;
  }
  if (r.status != "done") {
    row.state = SweepState::kCutShort;
    row.detail = "results.h5 says '" + r.status +
                 "': killed, out of time or crashed before the search ended; merge again with "
                 "--resume";
  } else {
    row.state = SweepState::kFinished;
  }
  const auto eval_json = results.parent_path() / "eval.json";
  row.at_target = allMet(eval_json);
  row.at_target_measured = !row.at_target.empty();
  if (row.at_target.empty()) {
    bool all = !r.tasks.empty();
    for (const auto& t : r.tasks) all = all && t.final_score >= t.target;
    row.at_target = all ? "yes" : "no";
    if (row.state == SweepState::kFinished)
      row.detail =
          "no eval.json: gemel eval did not run or failed; at target as results.h5 "
          "recorded";
  }
  return row;
}

std::string csvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string html(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string decisionsText(const SweepRow& r) {
  auto n = [&](const char* d) {
    const auto it = r.decisions.find(d);
    return it == r.decisions.end() ? 0 : it->second;
  };
  return format("{}/{}/{}/{}", n("accepted"), n("partial"), n("rejected"), n("failed"));
}

std::string atTargetText(const SweepRow& r) {
  if (r.at_target.empty()) return "-";
  return r.at_target + (r.at_target_measured ? "" : " (recorded)");
}

bool hasNumbers(const SweepRow& r) {
  return r.state == SweepState::kFinished || r.state == SweepState::kCutShort;
}

}  // namespace

std::vector<SweepRow> collectSweep(const std::vector<std::string>& inputs,
                                   const std::string& list) {
  std::map<std::string, fs::path> members;  // name -> results.h5
  for (const auto& input : inputs) {
    std::error_code ec;
    const fs::path p(input);
    if (fs::is_directory(p, ec)) {
      if (fs::exists(p / "results.h5", ec)) {
        members[fs::absolute(p).filename().string()] = p / "results.h5";
        continue;
      }
      for (const auto& entry : fs::directory_iterator(p, ec)) {
        if (entry.is_directory())
          members[entry.path().filename().string()] = entry.path() / "results.h5";
      }
      GEMEL_THROW_IF_NOT(!ec, InputError, "{}: cannot list the directory ({})", input,
                         ec.message());
    } else {
      GEMEL_THROW_IF_NOT(fs::exists(p, ec), InputError,
                         "{}: no such file or directory; give a sweep's output root or "
                         "results.h5 files",
                         input);
      members[fs::absolute(p).parent_path().filename().string()] = p;
    }
  }
  std::set<std::string> listed;
  if (!list.empty()) {
    std::ifstream in(list);
    GEMEL_THROW_IF_NOT(in.good(), InputError,
                       "{}: cannot read the sweep's list; give the LIST.txt that sweep.sbatch "
                       "took",
                       list);
    std::string line;
    while (std::getline(in, line)) {
      line.erase(0, line.find_first_not_of(" \t\r"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (line.empty() || line[0] == '#') continue;
      const auto name = fs::path(line).stem().string();
      listed.insert(name);
      if (!members.count(name)) members[name] = fs::path();
    }
  }
  std::vector<SweepRow> rows;
  for (const auto& [name, path] : members) {
    if (path.empty()) {
      SweepRow row;
      row.name = name;
      row.state = SweepState::kMissing;
      row.detail = "listed, but the sweep wrote no directory for it (its array task never ran)";
      rows.push_back(row);
      continue;
    }
    rows.push_back(readMember(name, path));
  }
  return rows;
}

namespace {

std::string tableLine(const std::string& name, const std::string& tasks,
                      const std::string& possible, const std::string& confirmed,
                      const std::string& percent, const std::string& at_target,
                      const std::string& decisions, const std::string& seconds,
                      const std::string& state, const std::string& ended) {
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %5s %10s %10s %6s  %-15s %-16s %8s  %-10s ", name.c_str(),
                tasks.c_str(), possible.c_str(), confirmed.c_str(), percent.c_str(),
                at_target.c_str(), decisions.c_str(), seconds.c_str(), state.c_str());
  return line + ended + "\n";
}

}  // namespace

std::string sweepTable(const std::vector<SweepRow>& rows) {
  std::string out = tableLine("workload", "tasks", "possible", "confirmed", "%poss", "at target",
                              "acc/par/rej/fail", "seconds", "state", "ended");
  for (const auto& r : rows) {
    if (!hasNumbers(r)) {
      out +=
          tableLine(r.name, "-", "-", "-", "-", "-", "-", "-", sweepStateName(r.state), r.detail);
      continue;
    }
    out += tableLine(
        r.name, std::to_string(r.tasks), formatBytes(r.possible), formatBytes(r.confirmed),
        formatFixed(r.percentOfPossible(), 1), atTargetText(r), decisionsText(r),
        formatFixed(r.search_seconds, 0), sweepStateName(r.state),
        r.state == SweepState::kFinished && r.detail.empty() ? (r.ended.empty() ? "-" : r.ended)
                                                             : r.detail);
  }
  return out;
}

std::string sweepCsv(const std::vector<SweepRow>& rows) {
  std::string out =
      "workload,state,tasks,total_bytes,possible_bytes,confirmed_bytes,percent_of_possible,"
      "all_at_target,at_target_from,accepted,partial,rejected,failed,trials,search_seconds,"
      "ended,results,detail\n";
  for (const auto& r : rows) {
    auto n = [&](const char* d) {
      const auto it = r.decisions.find(d);
      return it == r.decisions.end() ? 0 : it->second;
    };
    const bool numbers = hasNumbers(r);
    out += format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csvField(r.name),
                  sweepStateName(r.state), numbers ? std::to_string(r.tasks) : "",
                  numbers ? std::to_string(r.total_bytes) : "",
                  numbers ? std::to_string(r.possible) : "",
                  numbers ? std::to_string(r.confirmed) : "",
                  numbers ? formatFixed(r.percentOfPossible(), 2) : "", r.at_target,
                  r.at_target.empty() ? "" : (r.at_target_measured ? "eval.json" : "results.h5"),
                  n("accepted"), n("partial"), n("rejected"), n("failed"), r.trials,
                  numbers ? formatFixed(r.search_seconds, 1) : "", csvField(r.ended),
                  csvField(r.path), csvField(r.detail));
  }
  return out;
}

namespace {

// The page's plot: per workload, the possible savings (grey) and the confirmed part (green when
// every task is at target, else orange); a workload without figures names its state.
std::string sweepPlot(const std::vector<SweepRow>& rows) {
  std::ostringstream o;
  int64_t most = 1;
  for (const auto& r : rows) most = std::max(most, r.possible);
  const int label_w = 200, bar_w = 460, row_h = 26, top = 30;
  const int height = top + row_h * static_cast<int>(rows.size()) + 20;
  o << "<section id=\"plot\"><h2>Savings per workload</h2>\n<svg "
       "xmlns=\"http://www.w3.org/2000/svg\" "
       "width=\""
    << label_w + bar_w + 220 << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect x=\"" << label_w
    << "\" y=\"6\" width=\"12\" height=\"12\" fill=\"#d9d9d9\"/><text x=\"" << label_w + 16
    << "\" y=\"16\">possible</text><rect x=\"" << label_w + 90
    << "\" y=\"6\" width=\"12\" height=\"12\" fill=\"#2e7d32\"/><text x=\"" << label_w + 106
    << "\" y=\"16\">confirmed, every task at target</text><rect x=\"" << label_w + 310
    << "\" y=\"6\" width=\"12\" height=\"12\" fill=\"#ef6c00\"/><text x=\"" << label_w + 326
    << "\" y=\"16\">not finished or below target</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const int y = top + static_cast<int>(i) * row_h;
    o << "<text x=\"" << label_w - 8 << "\" y=\"" << y + 16 << "\" text-anchor=\"end\">"
      << html(r.name) << "</text>\n";
    if (!hasNumbers(r)) {
      o << "<text x=\"" << label_w + 4 << "\" y=\"" << y + 16 << "\" fill=\"#c62828\">"
        << sweepStateName(r.state) << "</text>\n";
      continue;
    }
    const double wp = bar_w * static_cast<double>(r.possible) / static_cast<double>(most);
    const double wc = bar_w * static_cast<double>(r.confirmed) / static_cast<double>(most);
    o << "<rect x=\"" << label_w << "\" y=\"" << y + 4 << "\" width=\"" << formatFixed(wp, 1)
      << "\" height=\"" << row_h - 8 << "\" fill=\"#d9d9d9\"/>\n<rect x=\"" << label_w << "\" y=\""
      << y + 4 << "\" width=\"" << formatFixed(wc, 1) << "\" height=\"" << row_h - 8 << "\" fill=\""
      << (r.complete() ? "#2e7d32" : "#ef6c00") << "\"/>\n<text x=\""
      << label_w + static_cast<int>(wp) + 6 << "\" y=\"" << y + 16 << "\">"
      << formatFixed(r.percentOfPossible(), 1) << "% of " << html(formatBytes(r.possible))
      << (r.state == SweepState::kFinished ? "" : " (cut short)") << "</text>\n";
  }
  o << "</svg></section>\n";
  return o.str();
}

}  // namespace

std::string sweepHtml(const std::vector<SweepRow>& rows, const std::string& title) {
  std::map<std::string, int> by_state;
  int complete = 0;
  for (const auto& r : rows) {
    by_state[sweepStateName(r.state)]++;
    complete += r.complete();
  }
  std::string counts;
  for (const auto& [state, n] : by_state)
    counts += format("{}{} {}", counts.empty() ? "" : ", ", n, state);
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << html(title)
    << "</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}"
       "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px "
       "7px;text-align:right}td.l,th.l{text-align:left}tr.bad td{background:#fdecea}"
       "tr.warn td{background:#fff6e0}.note{color:#555;font-size:13px}</style></head><body>\n";
  o << "<h1>" << html(title) << "</h1>\n<p>" << rows.size() << " workloads: " << html(counts)
    << "; " << complete << " finished with every task at its target.</p>\n";
  o << sweepPlot(rows);
  o << "<section id=\"table\"><h2>Workloads</h2>\n<table><tr><th class=\"l\">workload</th>"
       "<th class=\"l\">state</th><th>tasks</th><th>possible</th><th>confirmed</th>"
       "<th>% of possible</th><th class=\"l\">every task at target</th>"
       "<th>accepted/partial/rejected/failed</th><th>search s</th><th class=\"l\">ended, or "
       "what is wrong</th></tr>\n";
  for (const auto& r : rows) {
    const bool numbers = hasNumbers(r);
    const char* cls =
        r.complete() ? ""
                     : (r.state == SweepState::kFinished ? " class=\"warn\"" : " class=\"bad\"");
    o << "<tr" << cls << "><td class=\"l\">" << html(r.name) << "</td><td class=\"l\">"
      << sweepStateName(r.state) << "</td><td>" << (numbers ? std::to_string(r.tasks) : "-")
      << "</td><td>" << (numbers ? html(formatBytes(r.possible)) : "-") << "</td><td>"
      << (numbers ? html(formatBytes(r.confirmed)) : "-") << "</td><td>"
      << (numbers ? formatFixed(r.percentOfPossible(), 1) : "-") << "</td><td class=\"l\">"
      << html(atTargetText(r)) << "</td><td>" << (numbers ? decisionsText(r) : "-") << "</td><td>"
      << (numbers ? formatFixed(r.search_seconds, 0) : "-") << "</td><td class=\"l\">"
      << html(r.state == SweepState::kFinished && r.detail.empty() ? r.ended : r.detail)
      << "</td></tr>\n";
  }
  o << "</table></section>\n<p class=\"note\">At target: from each workload's eval.json (what "
       "gemel eval measured), or, marked recorded, from the scores results.h5 holds.</p>\n"
       "</body></html>\n";
  return o.str();
}

}  // namespace gemel::io
