// `wxrecond discrepancies ...`: finance's work on discrepancies from the command line (docs/interfaces.md
// §1.1, docs/finance.md "Working discrepancies"). `list` prints them as an aligned table, CSV or JSON;
// `ack` and `resolve` move one on through the same SQL functions wxrecon_operator calls, recording who.
#pragma once

#include <string>
#include <vector>

namespace wxrecon::daemon {

// args: the words after "discrepancies". Returns the exit status: 0; 1 for bad usage (or input the
// database refuses); 2 for a bad configuration; 3 when the database is unavailable; 5 when ack or resolve
// changed nothing (no such discrepancy, or not in a status the step applies to).
int run_discrepancies_command(const std::vector<std::string>& args, const std::string& config_path);

}  // namespace wxrecon::daemon
