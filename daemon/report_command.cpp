#include "report_command.hpp"

#include <cstdio>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "app.hpp"
#include "base/csv.hpp"
#include "base/json_writer.hpp"
#include "config/config.hpp"
#include "protocol/bill.hpp"
#include "store/db_pool.hpp"
#include "store/statement_store.hpp"

namespace wxrecon::daemon {
namespace {

constexpr const char* report_usage =
    "usage: wxrecond [--config PATH] report --date YYYY-MM-DD [--mchid M] [--format csv|json]\n";

std::string number_or_empty(const std::optional<std::int64_t>& fen) {
    return fen ? csv_number(std::to_string(*fen)) : std::string();
}

std::string csv_header() {
    return csv_line({"mchid", "out_trade_no", "transaction_id", "created_at", "state", "settled_by",
                     "success_time", "amount_total_fen", "payer_total_fen", "refunded_fen", "bill_order_fen",
                     "bill_settlement_fen", "bill_refund_fen", "bill_fee", "open_discrepancies"});
}

std::string csv_row(const std::string& mchid, const store::statement_row& r) {
    return csv_line({csv_field(mchid), csv_field(r.out_trade_no), csv_field(r.transaction_id),
                     csv_field(r.created_at), csv_field(r.state), csv_field(r.settled_by),
                     csv_field(r.success_time), number_or_empty(r.amount_total_fen),
                     number_or_empty(r.payer_total_fen), csv_number(std::to_string(r.refunded_fen)),
                     number_or_empty(r.bill_order_fen), number_or_empty(r.bill_settlement_fen),
                     number_or_empty(r.bill_refund_fen), r.bill_fee ? csv_number(*r.bill_fee) : std::string(),
                     csv_field(r.open_discrepancies)});
}

void add_fen(json_object& o, std::string_view key, const std::optional<std::int64_t>& fen) {
    if (fen)
        o.add(key, *fen);
    else
        o.add_null(key);
}

std::string json_row(const std::string& mchid, const store::statement_row& r) {
    json_object o;
    o.add("mchid", mchid).add("out_trade_no", r.out_trade_no).add("transaction_id", r.transaction_id);
    o.add("created_at", r.created_at).add("state", r.state).add("settled_by", r.settled_by);
    o.add("success_time", r.success_time);
    add_fen(o, "amount_total_fen", r.amount_total_fen);
    add_fen(o, "payer_total_fen", r.payer_total_fen);
    o.add("refunded_fen", r.refunded_fen);
    add_fen(o, "bill_order_fen", r.bill_order_fen);
    add_fen(o, "bill_settlement_fen", r.bill_settlement_fen);
    add_fen(o, "bill_refund_fen", r.bill_refund_fen);
    if (r.bill_fee)
        o.add("bill_fee", *r.bill_fee);
    else
        o.add_null("bill_fee");
    o.add("open_discrepancies", r.open_discrepancies);
    return o.str();
}

}  // namespace

int run_report_command(const std::vector<std::string>& args, const std::string& config_path) {
    std::string date, mchid, format = "csv";
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        if (args[i] == "--help" || args[i] == "-h") {
            std::fputs(report_usage, stdout);
            return exit_ok;
        } else if (has_value && args[i] == "--date") {
            date = args[++i];
        } else if (has_value && args[i] == "--mchid") {
            mchid = args[++i];
        } else if (has_value && args[i] == "--format") {
            format = args[++i];
        } else {
            std::fprintf(stderr, "wxrecond: report: unexpected argument \"%s\"\n%s", args[i].c_str(),
                         report_usage);
            return exit_failure;
        }
    }
    const bool date_ok = date.size() == 10 && protocol::bill::parse_beijing_datetime(date + " 00:00:00");
    if (!date_ok || (format != "csv" && format != "json")) {
        std::fprintf(stderr, "wxrecond: report: --date YYYY-MM-DD is required; --format is csv or json\n%s",
                     report_usage);
        return exit_failure;
    }
    auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "wxrecond: report: %s\n", cfg.err().message.c_str());
        return exit_bad_config;
    }
    if (!mchid.empty() && cfg->find_merchant(mchid) == nullptr) {
        std::fprintf(stderr, "wxrecond: report: merchant %s is not in %s\n", mchid.c_str(),
                     config_path.c_str());
        return exit_bad_config;
    }
    try {
        store::db_pool pool(cfg->database.url, 1, 4);
        boost::asio::io_context io;
        bool first = true, started = false;
        // Nothing is printed before the first row or the end: a failing query leaves stdout empty.
        auto start = [&] {
            if (started) return;
            started = true;
            if (format == "csv")
                std::fputs(csv_header().c_str(), stdout);
            else
                std::printf("{\"date\":\"%s\",\"orders\":[", date.c_str());
        };
        for (const auto& m : cfg->merchants) {
            if (!mchid.empty() && m.mchid != mchid) continue;
            auto print = [&, id = m.mchid](const store::statement_row& row) {
                start();
                if (format == "csv") {
                    std::fputs(csv_row(id, row).c_str(), stdout);
                } else {
                    std::printf("%s\n%s", first ? "" : ",", json_row(id, row).c_str());
                    first = false;
                }
            };
            auto done = boost::asio::co_spawn(io, store::day_statement(pool, m.mchid, date, print),
                                              boost::asio::use_future);
            io.run();
            io.restart();
            done.get();
        }
        start();
        if (format == "json") std::printf("\n]}\n");
        pool.stop();
        return exit_ok;
    } catch (...) {
        return command_failure("report");
    }
}

}  // namespace wxrecon::daemon
