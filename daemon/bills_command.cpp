#include "bills_command.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "app.hpp"
#include "base/gzip.hpp"
#include "config/config.hpp"
#include "protocol/bill.hpp"
#include "store/bill_store.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "workflow/bill_reconciler.hpp"

namespace wxrecon::daemon {

namespace {

namespace bill = protocol::bill;

constexpr const char* bills_usage =
    "usage: wxrecond bills check FILE [--kind trade|fundflow]\n"
    "       wxrecond [--config PATH] bills load --mchid M --date YYYY-MM-DD [--trade FILE] [--fundflow "
    "FILE]\n"
    "                [--bill-type T] [--account-type A] [--no-trade-bill]\n";

// Streams the file (gunzipped when it is gzip) into the parser: neither the file nor its text is held whole.
result<bill::bill_totals> check_file(const std::string& path, std::optional<bill::bill_kind> kind) {
    bill::bill_parser parser({}, kind);
    const auto read =
        read_file_content(path, [&parser](std::string_view piece) { return parser.feed(piece); });
    if (!read) return read.err();
    return parser.finish();
}

int bills_check(const std::vector<std::string>& args) {
    std::optional<std::string> path;
    std::optional<bill::bill_kind> kind;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        std::optional<std::string> kind_text;
        if (arg == "--kind" && i + 1 < args.size()) {
            kind_text = args[++i];
        } else if (arg.starts_with("--kind=")) {
            kind_text = arg.substr(std::strlen("--kind="));
        } else if (!arg.starts_with("--") && !path) {
            path = arg;
            continue;
        } else {
            std::fprintf(stderr, "wxrecond: bills check: unexpected argument \"%s\"\n%s", arg.c_str(),
                         bills_usage);
            return exit_failure;
        }
        kind = bill::parse_bill_kind(*kind_text);
        if (!kind) {
            std::fprintf(stderr, "wxrecond: bills check: --kind must be trade or fundflow\n%s", bills_usage);
            return exit_failure;
        }
    }
    if (!path) {
        std::fprintf(stderr, "wxrecond: bills check: no FILE given\n%s", bills_usage);
        return exit_failure;
    }

    const auto totals = check_file(*path, kind);
    if (!totals) {
        const std::string& why = totals.err().message;
        // read_file_content names the file in its io errors already.
        if (totals.err().code == errc::io_error)
            std::fprintf(stderr, "wxrecond: bills check: %s\n", why.c_str());
        else
            std::fprintf(stderr, "wxrecond: bills check: %s: %s\n", path->c_str(), why.c_str());
        return totals.err().code == errc::parse_error ? exit_bad_input : exit_failure;
    }
    std::printf("%s\n", bill::totals_json(*totals).c_str());
    const auto* fundflow_totals = std::get_if<bill::fundflow_totals>(&*totals);
    if (fundflow_totals == nullptr) return exit_ok;
    const auto& fundflow = *fundflow_totals;
    // Reported, not fatal: the balance chain is a check on WeChat Pay's ordering, not on the totals.
    for (const std::string& warning : fundflow.balance_warnings) {
        std::fprintf(stderr, "wxrecond: bills check: %s: warning: %s\n", path->c_str(), warning.c_str());
    }
    const auto unreported =
        fundflow.balance_breaks - static_cast<std::int64_t>(fundflow.balance_warnings.size());
    if (unreported > 0) {
        std::fprintf(stderr, "wxrecond: bills check: %s: warning: %lld more balance breaks\n", path->c_str(),
                     static_cast<long long>(unreported));
    }
    return exit_ok;
}

// A real calendar date written YYYY-MM-DD.
bool is_bill_date(const std::string& text) {
    return text.size() == 10 && bill::parse_beijing_datetime(text + " 00:00:00").has_value();
}

// The words of `bills load`, checked.
struct load_request {
    std::string mchid, date;
    std::optional<std::string> trade_file, fundflow_file;
    std::string bill_type = "ALL", account_type = "BASIC";
    bool no_trade_bill = false;
};

std::optional<load_request> parse_load_args(const std::vector<std::string>& args) {
    load_request r;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        const bool has_value = i + 1 < args.size();
        if (arg == "--no-trade-bill") {
            r.no_trade_bill = true;
        } else if (has_value && arg == "--mchid") {
            r.mchid = args[++i];
        } else if (has_value && arg == "--date") {
            r.date = args[++i];
        } else if (has_value && arg == "--trade") {
            r.trade_file = args[++i];
        } else if (has_value && arg == "--fundflow") {
            r.fundflow_file = args[++i];
        } else if (has_value && arg == "--bill-type") {
            r.bill_type = args[++i];
        } else if (has_value && arg == "--account-type") {
            r.account_type = args[++i];
        } else {
            std::fprintf(stderr, "wxrecond: bills load: unexpected argument \"%s\"\n%s", arg.c_str(),
                         bills_usage);
            return std::nullopt;
        }
    }
    const char* problem = nullptr;
    if (r.mchid.empty())
        problem = "--mchid is required";
    else if (!is_bill_date(r.date))
        problem = "--date must be a date YYYY-MM-DD";
    else if (!r.trade_file && !r.fundflow_file && !r.no_trade_bill)
        problem = "give --trade FILE, --fundflow FILE or --no-trade-bill";
    else if (r.trade_file && r.no_trade_bill)
        problem = "--trade and --no-trade-bill contradict each other";
    if (problem) {
        std::fprintf(stderr, "wxrecond: bills load: %s\n%s", problem, bills_usage);
        return std::nullopt;
    }
    return r;
}

workflow::bill_day_request day_request(const load_request& r, const config::config& cfg) {
    workflow::bill_day_request day;
    day.mchid = r.mchid;
    day.bill_date = r.date;
    day.no_trade_bill = r.no_trade_bill;
    day.cross_day_tolerance = std::chrono::duration_cast<std::chrono::microseconds>(
        (cfg.bills ? *cfg.bills : config::bills_config{}).cross_day_tolerance);
    if (r.trade_file)
        day.files.push_back(
            {r.mchid, r.date, bill::bill_kind::trade, r.bill_type, *r.trade_file, std::nullopt});
    if (r.fundflow_file)
        day.files.push_back(
            {r.mchid, r.date, bill::bill_kind::fundflow, r.account_type, *r.fundflow_file, std::nullopt});
    return day;
}

// Stores files an operator downloaded (from the merchant platform, say) and reconciles their day, exactly as
// a fetched day is.
int bills_load(const std::vector<std::string>& args, const std::string& config_path) {
    const auto request = parse_load_args(args);
    if (!request) return exit_failure;
    auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "wxrecond: bills load: %s\n", cfg.err().message.c_str());
        return exit_bad_config;
    }
    if (cfg->find_merchant(request->mchid) == nullptr) {
        std::fprintf(stderr, "wxrecond: bills load: merchant %s is not in %s\n", request->mchid.c_str(),
                     config_path.c_str());
        return exit_bad_config;
    }
    try {
        if (cfg->database.auto_migrate) migrate_database(cfg->database.url);
        store::db_pool pool(cfg->database.url, 2, 64, store::prepare_ledger_connection);
        store::ledger ledger(pool);
        boost::asio::io_context io;
        auto done =
            boost::asio::co_spawn(io, workflow::reconcile_bill_day(pool, ledger, day_request(*request, *cfg)),
                                  boost::asio::use_future);
        io.run();
        const auto result = done.get();
        std::printf("%s\n", result.json().c_str());
        for (const auto& file : result.files) {
            if (file.outcome == store::bill_store_outcome::malformed) return exit_bad_input;
        }
        return exit_ok;
    } catch (const startup_error& e) {
        std::fprintf(stderr, "wxrecond: bills load: %s\n", e.what());
        return e.exit_status;
    } catch (const store::database_unavailable& e) {
        std::fprintf(stderr, "wxrecond: bills load: database unavailable: %s\n", e.what());
        return exit_database;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wxrecond: bills load: %s\n", e.what());
        return exit_failure;
    }
}

}  // namespace

int run_bills_command(const std::vector<std::string>& args, const std::string& config_path) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        std::fputs(bills_usage, args.empty() ? stderr : stdout);
        return args.empty() ? exit_failure : exit_ok;
    }
    if (args[0] == "check") return bills_check(args);
    if (args[0] == "load") return bills_load(args, config_path);
    std::fprintf(stderr, "wxrecond: bills: unknown or not yet implemented command \"%s\"\n%s",
                 args[0].c_str(), bills_usage);
    return exit_failure;
}

}  // namespace wxrecon::daemon
