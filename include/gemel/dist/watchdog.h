#pragma once
// Watchdog: ends a distributed job whose blocking collective has waited longer than --timeout,
// instead of letting every rank hang on one that stopped (SIGSTOP, a frozen node, a lost
// network) without its process ending (a process that ends is mpirun's business: it ends the
// job at once).
//
// Protocol. Each rank runs one watchdog thread. Every second it writes a heartbeat file,
// <dir>/rank-<r> holding the wall-clock time, into a directory all ranks see (the merge's
// output directory, which rank 0 writes and every rank reads for --resume). A thread that is
// stopped writes none. Each blocking MPI call runs inside a CollectiveScope that names the call
// and the world ranks it waits on. When one has waited longer than the timeout, the watchdog
// reads the heartbeats of those ranks, logs one error that names the call and the ranks whose
// heartbeat has gone stale (or says that all are alive, so the ranks disagree on the order
// of their calls or one is stuck elsewhere), and ends this process with exit code 6; mpirun
// then ends the others.
//
// NCCL calls are asynchronous and are not watched here.
#include <string>
#include <vector>

namespace gemel::dist {

class World;

// Starts this process's watchdog (idempotent; a no-op in a single-process run).
// timeout_seconds <= 0 disables it. Removes this rank's heartbeat file when the process ends
// normally.
void startWatchdog(double timeout_seconds, const std::string& heartbeat_dir, const World& world);

// One blocking call, watched while the scope lives. `ranks`: the world ranks it waits on
// (empty: the whole world). Scopes do not nest; an inner one is ignored. A `patient` scope
// waits as long as the ranks it waits on are alive (their heartbeats fresh), and fires only
// once one has stopped: a rank waiting for other ranks' trials to end (parallel trials).
class CollectiveScope {
 public:
  explicit CollectiveScope(const char* what, const std::vector<int>* ranks = nullptr,
                           bool patient = false);
  ~CollectiveScope();
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;

 private:
  bool armed_ = false;
};

}  // namespace gemel::dist
