// `wxrecond [--config PATH] report --date YYYY-MM-DD [--mchid M] [--format csv|json]`: the day's statement
// for finance (docs/interfaces.md §7.1). Per order placed, paid or billed that Beijing day: the ledger's
// amounts, state and how it was settled, the trade bill's amounts and fee, refunds, open discrepancies. CSV
// (for a spreadsheet, text that could run as a formula neutralised) or one JSON object.
#pragma once

#include <string>
#include <vector>

namespace wxrecon::daemon {

// args: the words after "report". Returns the exit status: 0; 1 for bad usage; 2 for a bad configuration or
// an unknown merchant; 3 when the database is unavailable.
int run_report_command(const std::vector<std::string>& args, const std::string& config_path);

}  // namespace wxrecon::daemon
