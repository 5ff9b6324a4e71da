// `wxrecond bills ...`: the bill commands (docs/interfaces.md §1.1). Today `bills check FILE
// [--kind trade|fundflow]`: parse a bill file offline, plain or gzip, and print its totals as one JSON
// object; no configuration, no database.
#pragma once

#include <string>
#include <vector>

namespace wxrecon::daemon {

// args: the words after "bills". Returns the exit status: 0, 4 for a malformed or self-contradicting
// file (the message names the line and column or the summary field), 1 for bad usage or an unreadable
// file.
int run_bills_command(const std::vector<std::string>& args);

}  // namespace wxrecon::daemon
