#pragma once
// The text forms in which the merge's control messages travel between ranks (World::share):
// one place for every wire format but the weights' (state_transfer.h, which needs LibTorch).
// Every rank runs the same build, so the forms are versionless; unpack(pack(x)) == x.
#include <cstdint>
#include <string>
#include <vector>

#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"

namespace gemel::merge::wire {

// A model's shareable layers, described by the rank that holds it.
std::string pack(const merge::CatalogModel& model);
merge::CatalogModel unpackCatalogModel(const std::string& text);

// A sharing plan: which models share each layer instance.
std::string pack(const merge::SharingPlan& plan);
merge::SharingPlan unpackPlan(const std::string& text);

// Numbers in a comma-separated list: integers, and doubles exactly (hexadecimal, %a), so that
// every rank reads back the bits the sender had.
std::string packInts(const std::vector<int64_t>& values);
std::vector<int64_t> unpackInts(const std::string& text);
std::string packDoubles(const std::vector<double>& values);
std::vector<double> unpackDoubles(const std::string& text);

// A trial the lead proposes.
std::string pack(const merge::Trial& trial);
merge::Trial unpackTrial(const std::string& text);

}  // namespace gemel::merge::wire
