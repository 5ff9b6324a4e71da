#include "bills_command.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <variant>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "app.hpp"
#include "base/gzip.hpp"
#include "config/config.hpp"
#include "protocol/bill.hpp"
#include "store/app_event_store.hpp"
#include "store/bill_store.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "workflow/bill_fetcher.hpp"
#include "workflow/bill_reconciler.hpp"

namespace wxrecon::daemon {

namespace {

namespace bill = protocol::bill;

constexpr const char* bills_usage =
    "usage: wxrecond bills check FILE [--kind trade|fundflow]\n"
    "       wxrecond [--config PATH] bills load --mchid M --date YYYY-MM-DD [--trade FILE] [--fundflow "
    "FILE]\n"
    "                [--bill-type T] [--account-type A] [--no-trade-bill]\n"
    "       wxrecond [--config PATH] bills fetch --date YYYY-MM-DD [--mchid M] [--kind trade|fundflow|all]\n";

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
    else if (r.date > workflow::bill_fetcher::previous_beijing_day(wall_clock{}.seconds()))
        problem = "--date must be a day before today (Beijing): WeChat Pay bills a day once it is over";
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

// The fetcher lives as long as its one run.
boost::asio::awaitable<workflow::bill_day_result> fetch_with(boost::asio::io_context& io,
                                                             store::db_pool& pool, store::ledger& ledger,
                                                             workflow::bill_fetch_policy policy,
                                                             const config::merchant_config& m,
                                                             const config::merchant_keys& keys,
                                                             std::string date) {
    workflow::bill_fetcher fetcher(io.get_executor(), pool, ledger, nullptr, wall_clock{}, std::move(policy));
    co_return co_await fetcher.fetch_day(m, keys, std::move(date));
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

// Runs one day's work against the database (migrated first when auto_migrate) and prints its result.
// Returns the exit status: 4 when a file was malformed, 3 when the database is unavailable.
template <class Work>
int run_day(const char* command, const config::config& cfg, Work work) {
    try {
        if (cfg.database.auto_migrate) migrate_database(cfg.database.url);
        // Facts and discrepancies found by hand are announced like the daemon's own (the daemon delivers
        // them).
        store::db_pool pool(
            cfg.database.url, 2, 64,
            store::with_app_events(store::prepare_ledger_connection, cfg.app_events.has_value()));
        store::ledger ledger(pool);
        boost::asio::io_context io;
        auto done = boost::asio::co_spawn(io, work(io, pool, ledger), boost::asio::use_future);
        io.run();
        const workflow::bill_day_result result = done.get();
        std::printf("%s\n", result.json().c_str());
        for (const auto& file : result.files) {
            if (file.outcome == store::bill_store_outcome::malformed) return exit_bad_input;
        }
        return exit_ok;
    } catch (...) {
        return command_failure(command);
    }
}

std::optional<config::config> load_config_for(const char* command, const std::string& config_path,
                                              const std::string& mchid) {
    auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "wxrecond: %s: %s\n", command, cfg.err().message.c_str());
        return std::nullopt;
    }
    if (!mchid.empty() && cfg->find_merchant(mchid) == nullptr) {
        std::fprintf(stderr, "wxrecond: %s: merchant %s is not in %s\n", command, mchid.c_str(),
                     config_path.c_str());
        return std::nullopt;
    }
    return std::move(*cfg);
}

// Stores files an operator downloaded (from the merchant platform, say) and reconciles their day, exactly as
// a fetched day is.
int bills_load(const std::vector<std::string>& args, const std::string& config_path) {
    const auto request = parse_load_args(args);
    if (!request) return exit_failure;
    const auto cfg = load_config_for("bills load", config_path, request->mchid);
    if (!cfg) return exit_bad_config;
    return run_day("bills load", *cfg,
                   [&](boost::asio::io_context&, store::db_pool& pool, store::ledger& ledger) {
                       return workflow::reconcile_bill_day(pool, ledger, day_request(*request, *cfg));
                   });
}

// Downloads (again) the bills of one Beijing day from WeChat Pay, stores and reconciles them.
int bills_fetch(const std::vector<std::string>& args, const std::string& config_path) {
    std::string date, mchid, kind = "all";
    for (std::size_t i = 1; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        if (has_value && args[i] == "--date")
            date = args[++i];
        else if (has_value && args[i] == "--mchid")
            mchid = args[++i];
        else if (has_value && args[i] == "--kind")
            kind = args[++i];
        else {
            std::fprintf(stderr, "wxrecond: bills fetch: unexpected argument \"%s\"\n%s", args[i].c_str(),
                         bills_usage);
            return exit_failure;
        }
    }
    if (!is_bill_date(date) || (kind != "all" && kind != "trade" && kind != "fundflow")) {
        std::fprintf(
            stderr,
            "wxrecond: bills fetch: --date YYYY-MM-DD is required; --kind is trade, fundflow or all\n%s",
            bills_usage);
        return exit_failure;
    }
    const auto cfg = load_config_for("bills fetch", config_path, mchid);
    if (!cfg) return exit_bad_config;
    auto keys = config::load_key_store(*cfg, wall_clock{}.seconds());
    if (!keys) {
        std::fprintf(stderr, "wxrecond: bills fetch: %s\n", keys.err().message.c_str());
        return exit_bad_config;
    }
    const auto base = cfg->bills ? *cfg->bills : config::bills_config{};
    workflow::bill_fetch_policy policy;
    policy.trade = kind != "fundflow";
    policy.fundflow = kind != "trade";
    policy.cross_day_tolerance =
        std::chrono::duration_cast<std::chrono::microseconds>(base.cross_day_tolerance);
    policy.not_ready_tries = 1;  // on demand: say so at once rather than wait half an hour
    policy.owner = "wxrecond-cli-" + std::to_string(::getpid());
    int status = exit_ok;
    for (const auto& m : cfg->merchants) {
        if (!mchid.empty() && m.mchid != mchid) continue;
        const auto* merchant_keys = keys->find(m.mchid);
        status = std::max(
            status, run_day("bills fetch", *cfg,
                            [&](boost::asio::io_context& io, store::db_pool& pool, store::ledger& ledger) {
                                return fetch_with(io, pool, ledger, policy, m, *merchant_keys, date);
                            }));
    }
    return status;
}

}  // namespace

int run_bills_command(const std::vector<std::string>& args, const std::string& config_path) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        std::fputs(bills_usage, args.empty() ? stderr : stdout);
        return args.empty() ? exit_failure : exit_ok;
    }
    if (args[0] == "check") return bills_check(args);
    if (args[0] == "load") return bills_load(args, config_path);
    if (args[0] == "fetch") return bills_fetch(args, config_path);
    std::fprintf(stderr, "wxrecond: bills: unknown command \"%s\"\n%s", args[0].c_str(), bills_usage);
    return exit_failure;
}

}  // namespace wxrecon::daemon
