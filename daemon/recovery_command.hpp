// The operators' recovery tools (docs/interfaces.md §1.1):
//   wxrecond [--config PATH] replay --rejected ID | --event ID
//   wxrecond [--config PATH] repoll MCHID OUT_TRADE_NO
// replay re-verifies a stored notification with today's keys (after a key was fixed) and applies it
// through the same intake and fact path as a delivery, idempotently; repoll queries one order at WeChat
// Pay now and applies the answer. Each prints one JSON object.
#pragma once

#include <string>
#include <vector>

namespace wxrecon::daemon {

// args: the words after "replay". Exit status: 0 applied (accepted, duplicate or ignored); 4 refused again
// or not a notification; 1 bad usage, no such id, or not applied for now; 2 bad configuration; 3 database.
int run_replay_command(const std::vector<std::string>& args, const std::string& config_path);

// args: the words after "repoll". Exit status: 0 queried and the answer applied; 1 bad usage, no such
// order, the order leased by a running poll, or the query failed (the JSON says how); 2 bad configuration
// or a merchant not configured; 3 database.
int run_repoll_command(const std::vector<std::string>& args, const std::string& config_path);

}  // namespace wxrecon::daemon
