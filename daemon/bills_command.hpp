// `wxrecond bills ...`: the bill commands (docs/interfaces.md §1.1). `bills check FILE [--kind
// trade|fundflow]` parses a bill file offline (plain or gzip) and prints its totals as one JSON object, with
// no configuration and no database; `bills load` stores a merchant's bill files for a day and reconciles
// the day against them.
#pragma once

#include <string>
#include <vector>

namespace wxrecon::daemon {

// args: the words after "bills"; config_path: for the commands that need the configuration. Returns the
// exit status: 0; 4 for a malformed or self-contradicting file (the message names the line and column or the
// summary field); 1 for bad usage or an unreadable file; 2 for a bad configuration; 3 when the database is
// unavailable.
int run_bills_command(const std::vector<std::string>& args, const std::string& config_path);

}  // namespace wxrecon::daemon
