#include "bills_command.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <variant>

#include "app.hpp"
#include "base/gzip.hpp"
#include "base/json_writer.hpp"
#include "protocol/bill.hpp"

namespace wxrecon::daemon {

namespace {

namespace bill = protocol::bill;

constexpr const char* bills_usage = "usage: wxrecond bills check FILE [--kind trade|fundflow]\n";
constexpr std::size_t read_chunk_bytes = 64 * 1024;

struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

std::string trade_json(const bill::trade_totals& t) {
    return json_object{}
        .add("kind", "trade")
        .add("bill_type", bill::to_string(t.bill_type))
        .add("rows", t.rows)
        .add("payment_rows", t.payment_rows)
        .add("refund_rows", t.refund_rows)
        .add("settlement_total_fen", t.settlement_total_fen)
        .add("refund_total_fen", t.refund_total_fen)
        .add("order_total_fen", t.order_total_fen)
        .add("refund_requested_total_fen", t.refund_requested_total_fen)
        .add("fee_total", bill::format_fee(t.fee_total))
        .add("summary_matches", true)
        .str();
}

std::string fundflow_json(const bill::fundflow_totals& f) {
    return json_object{}
        .add("kind", "fundflow")
        .add("rows", f.rows)
        .add("income_rows", f.income_rows)
        .add("income_total_fen", f.income_total_fen)
        .add("expense_rows", f.expense_rows)
        .add("expense_total_fen", f.expense_total_fen)
        .add("summary_matches", true)
        .str();
}

// Reads the file in chunks through the gzip inflater (when it starts with gzip's magic) into the
// parser: neither the file nor its decompressed text is ever held whole.
result<bill::bill_totals> check_file(std::FILE* file, std::optional<bill::bill_kind> kind) {
    bill::bill_parser parser({}, kind);
    std::optional<gzip_inflater> inflater;
    const auto to_parser = [&parser](std::string_view piece) { return parser.feed(piece); };
    std::array<char, read_chunk_bytes> chunk;
    bool first = true;
    while (true) {
        const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), file);
        if (got == 0) {
            if (std::ferror(file))
                return make_error(errc::io_error, std::string("read: ") + std::strerror(errno));
            break;
        }
        const std::string_view bytes(chunk.data(), got);
        if (first && has_gzip_magic(bytes)) inflater.emplace();
        first = false;
        if (auto fed = inflater ? inflater->feed(bytes, to_parser) : parser.feed(bytes); !fed)
            return fed.err();
    }
    if (inflater) {
        if (auto ended = inflater->finish(); !ended) return ended.err();
    }
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

    const std::unique_ptr<std::FILE, file_closer> file(std::fopen(path->c_str(), "rb"));
    if (!file) {
        std::fprintf(stderr, "wxrecond: bills check: %s: %s\n", path->c_str(), std::strerror(errno));
        return exit_failure;
    }
    const auto totals = check_file(file.get(), kind);
    if (!totals) {
        std::fprintf(stderr, "wxrecond: bills check: %s: %s\n", path->c_str(), totals.err().message.c_str());
        return totals.err().code == errc::parse_error ? exit_bad_input : exit_failure;
    }
    if (const auto* trade = std::get_if<bill::trade_totals>(&*totals)) {
        std::printf("%s\n", trade_json(*trade).c_str());
        return exit_ok;
    }
    const auto& fundflow = std::get<bill::fundflow_totals>(*totals);
    std::printf("%s\n", fundflow_json(fundflow).c_str());
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

}  // namespace

int run_bills_command(const std::vector<std::string>& args) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        std::fputs(bills_usage, args.empty() ? stderr : stdout);
        return args.empty() ? exit_failure : exit_ok;
    }
    if (args[0] == "check") return bills_check(args);
    std::fprintf(stderr, "wxrecond: bills: unknown or not yet implemented command \"%s\"\n%s",
                 args[0].c_str(), bills_usage);
    return exit_failure;
}

}  // namespace wxrecon::daemon
