#include "discrepancies_command.hpp"

#include <charconv>
#include <cstdio>
#include <optional>
#include <string_view>

#include "app.hpp"
#include "base/csv.hpp"
#include "base/json_writer.hpp"
#include "config/config.hpp"
#include "store/db_pool.hpp"
#include "store/discrepancy_store.hpp"

namespace wxrecon::daemon {

namespace {

constexpr const char* usage =
    "usage: wxrecond [--config PATH] discrepancies list [--status open|acknowledged|resolved|all]\n"
    "                [--kind K] [--mchid M] [--format table|csv|json] [--limit N]\n"
    "       wxrecond [--config PATH] discrepancies ack ID --by WHO [--note TEXT]\n"
    "       wxrecond [--config PATH] discrepancies resolve ID --by WHO --note TEXT\n"
    "  list     default: the unresolved ones (open and acknowledged), oldest first, at most 1000\n"
    "           (--limit up to 100000); csv cells that start with = + - @ or a tab or CR get a\n"
    "           leading apostrophe, so a spreadsheet shows them instead of computing them\n"
    "  ack      open -> acknowledged: someone is looking at it\n"
    "  resolve  open or acknowledged -> resolved; the note says why\n"
    "  exit 5 when ack or resolve changed nothing (no such discrepancy, or not in that status)\n";

// The words of one command: options with a value, and the positional words.
struct parsed_args {
    std::vector<std::string> positional;
    std::vector<std::pair<std::string, std::string>> options;
    const std::string* find(std::string_view name) const {
        const std::string* found = nullptr;
        for (const auto& [k, v] : options)
            if (k == name) found = &v;
        return found;
    }
};

// Accepts "--name value" and "--name=value" for the names given; anything else starting with "--" is an
// error (returned as the offending word).
std::optional<std::string> parse_words(const std::vector<std::string>& args,
                                       const std::vector<std::string_view>& names, parsed_args& out) {
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (!arg.starts_with("--")) {
            out.positional.push_back(arg);
            continue;
        }
        bool known = false;
        for (const auto name : names) {
            if (arg == name && i + 1 < args.size()) {
                out.options.emplace_back(name, args[++i]);
                known = true;
            } else if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
                out.options.emplace_back(name, arg.substr(name.size() + 1));
                known = true;
            }
            if (known) break;
        }
        if (!known) return arg;
    }
    return std::nullopt;
}

int usage_error(const char* command, const std::string& why) {
    std::fprintf(stderr, "wxrecond: discrepancies %s: %s\n%s", command, why.c_str(), usage);
    return exit_failure;
}

// Loads the configuration and migrates when it says so; runs work(database url). Maps the failures to
// exit statuses the way the other commands do.
template <class Work>
int with_database(const char* command, const std::string& config_path, Work work) {
    const auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "wxrecond: discrepancies %s: %s\n", command, cfg.err().message.c_str());
        return exit_bad_config;
    }
    try {
        if (cfg->database.auto_migrate) migrate_database(cfg->database.url);
        store::discrepancy_store discrepancies(cfg->database.url);
        return work(discrepancies);
    } catch (...) {
        return command_failure(std::string("discrepancies ") + command);
    }
}

// ---- list output ----

// The cells of a row, in the order of the columns (csv and table share them; the table leaves out detail).
std::vector<std::string> cells_of(const store::discrepancy_row& d) {
    return std::vector<std::string>{std::to_string(d.id),
                                    d.mchid,
                                    d.out_trade_no,
                                    d.kind,
                                    d.status,
                                    d.detected_at,
                                    d.bill_date,
                                    d.acknowledged_at,
                                    d.acknowledged_by,
                                    d.resolved_at,
                                    d.resolved_by,
                                    d.resolution,
                                    d.detail_json};
}

const std::vector<std::string>& column_names() {
    static const std::vector<std::string> names{
        "id",        "mchid",           "out_trade_no",    "kind",        "status",      "detected_at",
        "bill_date", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolution",
        "detail"};
    return names;
}

// RFC 4180 through base/csv: quoting, CRLF, and a leading apostrophe on a cell a spreadsheet would run as
// a formula (= + - @ tab CR), since out_trade_no, names and notes come from outside. The id is a number.
void print_csv(const store::discrepancy_list& list) {
    std::string out;
    auto line = [&out](const std::vector<std::string>& cells, bool numbered) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
            if (i > 0) out += ',';
            out += numbered && i == 0 ? csv_number(cells[i]) : csv_field(cells[i]);
        }
        out += "\r\n";
    };
    line(column_names(), false);
    for (const auto& d : list.rows) line(cells_of(d), true);
    std::fwrite(out.data(), 1, out.size(), stdout);
}

void print_json(const store::discrepancy_list& list) {
    std::string out = "[";
    for (const auto& d : list.rows) {
        json_object o;
        o.add("id", static_cast<std::int64_t>(d.id));
        o.add("mchid", d.mchid);
        o.add("out_trade_no", d.out_trade_no);
        o.add("kind", d.kind);
        o.add("status", d.status);
        o.add("detected_at", d.detected_at);
        auto optional = [&o](std::string_view key, const std::string& value) {
            if (value.empty())
                o.add_null(key);
            else
                o.add(key, value);
        };
        optional("bill_date", d.bill_date);
        optional("acknowledged_at", d.acknowledged_at);
        optional("acknowledged_by", d.acknowledged_by);
        optional("resolved_at", d.resolved_at);
        optional("resolved_by", d.resolved_by);
        optional("resolution", d.resolution);
        o.add_raw("detail", d.detail_json);  // jsonb as PostgreSQL prints it: valid JSON
        out += out.size() == 1 ? "\n" : ",\n";
        out += o.str();
    }
    out += list.rows.empty() ? "]\n" : "\n]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

// For the table: one line per cell (control characters become spaces), long text cut, and the width in
// characters (UTF-8 code points; the table is for people, CSV and JSON carry the exact text).
constexpr std::size_t max_table_cell = 60;

std::string table_cell(std::string_view value, std::size_t& width) {
    std::string out;
    width = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        const bool starts_character = (c & 0xC0) != 0x80;
        if (starts_character) {
            if (width == max_table_cell) {
                out += "...";
                width += 3;
                break;
            }
            ++width;
        }
        out += c < 0x20 || c == 0x7F ? ' ' : static_cast<char>(c);
    }
    return out;
}

void print_table(const store::discrepancy_list& list) {
    // id, status, kind, mchid, out_trade_no, detected_at, acknowledged_by, resolved_by, resolution
    static const std::vector<std::string> header{"ID",       "STATUS",       "KIND",
                                                 "MCHID",    "OUT_TRADE_NO", "DETECTED_AT",
                                                 "ACKED_BY", "RESOLVED_BY",  "RESOLUTION"};
    std::vector<std::vector<std::pair<std::string, std::size_t>>> rows;
    auto add = [&rows](const std::vector<std::string>& cells) {
        auto& row = rows.emplace_back();
        for (const auto& cell : cells) {
            std::size_t width = 0;
            std::string text = table_cell(cell, width);
            row.emplace_back(std::move(text), width);
        }
    };
    add(header);
    for (const auto& d : list.rows)
        add(std::vector<std::string>{std::to_string(d.id), d.status, d.kind, d.mchid, d.out_trade_no,
                                     d.detected_at, d.acknowledged_by, d.resolved_by, d.resolution});
    std::vector<std::size_t> widths(header.size(), 0);
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].second);
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (i > 0) line += "  ";
            line += row[i].first;
            if (i + 1 < row.size()) line.append(widths[i] - row[i].second, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + "\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

int list_command(const std::vector<std::string>& args, const std::string& config_path) {
    parsed_args words;
    if (const auto bad = parse_words(args, {"--status", "--kind", "--mchid", "--format", "--limit"}, words))
        return usage_error("list", "unexpected argument \"" + *bad + "\"");
    if (!words.positional.empty())
        return usage_error("list", "unexpected argument \"" + words.positional.front() + "\"");
    store::discrepancy_filter filter;
    if (const auto* status = words.find("--status")) {
        const auto parsed = store::parse_status_filter(*status);
        if (!parsed) return usage_error("list", "--status must be open, acknowledged, resolved or all");
        filter.status = *parsed;
    }
    if (const auto* kind = words.find("--kind")) filter.kind = *kind;
    if (const auto* mchid = words.find("--mchid")) filter.mchid = *mchid;
    if (const auto* limit = words.find("--limit")) {
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
        if (ec != std::errc{} || end != limit->data() + limit->size() || n == 0 || n > store::max_list_limit)
            return usage_error("list", "--limit must be a number from 1 to 100000");
        filter.limit = n;
    }
    const std::string format = words.find("--format") ? *words.find("--format") : "table";
    if (format != "table" && format != "csv" && format != "json")
        return usage_error("list", "--format must be table, csv or json");

    return with_database("list", config_path, [&](store::discrepancy_store& discrepancies) {
        const auto list = discrepancies.list(filter);
        if (format == "csv")
            print_csv(list);
        else if (format == "json")
            print_json(list);
        else
            print_table(list);
        std::fflush(stdout);
        if (list.truncated)
            std::fprintf(
                stderr,
                "wxrecond: discrepancies list: showing the first %zu; more match (narrow the filters "
                "or raise --limit)\n",
                list.rows.size());
        return exit_ok;
    });
}

// ack and resolve: ID --by WHO [--note TEXT].
int step_command(const std::vector<std::string>& args, const std::string& config_path, bool resolve) {
    const char* command = resolve ? "resolve" : "ack";
    parsed_args words;
    if (const auto bad = parse_words(args, {"--by", "--note"}, words))
        return usage_error(command, "unexpected argument \"" + *bad + "\"");
    if (words.positional.size() != 1) return usage_error(command, "give exactly one discrepancy ID");
    const std::string& id_text = words.positional.front();
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc{} || end != id_text.data() + id_text.size() || id <= 0)
        return usage_error(command,
                           "ID must be a discrepancy id (a positive number), not \"" + id_text + "\"");
    const auto* by = words.find("--by");
    if (by == nullptr || by->find_first_not_of(" \t") == std::string::npos)
        return usage_error(command, "--by WHO is required: the person acting");
    const auto* note = words.find("--note");
    if (resolve && (note == nullptr || note->find_first_not_of(" \t\r\n") == std::string::npos))
        return usage_error(command, "--note TEXT is required: why it is resolved");
    const std::string note_text = note ? *note : std::string();

    return with_database(command, config_path, [&](store::discrepancy_store& discrepancies) {
        const auto done = resolve ? discrepancies.resolve(id, *by, note_text)
                                  : discrepancies.acknowledge(id, *by, note_text);
        if (!done) {
            std::fprintf(stderr, "wxrecond: discrepancies %s: %s\n", command, done.err().message.c_str());
            return exit_failure;
        }
        switch (done->outcome) {
            case store::transition_outcome::done:
                std::printf("discrepancy %lld %s by %s\n", static_cast<long long>(id),
                            resolve ? "resolved" : "acknowledged", by->c_str());
                return exit_ok;
            case store::transition_outcome::not_found:
                std::fprintf(stderr, "wxrecond: discrepancies %s: no discrepancy %lld\n", command,
                             static_cast<long long>(id));
                return exit_not_changed;
            case store::transition_outcome::wrong_status:
                break;
        }
        std::fprintf(stderr, "wxrecond: discrepancies %s: discrepancy %lld is %s, not %s: nothing changed\n",
                     command, static_cast<long long>(id), done->current_status.c_str(),
                     resolve ? "open or acknowledged" : "open");
        return exit_not_changed;
    });
}

}  // namespace

int run_discrepancies_command(const std::vector<std::string>& args, const std::string& config_path) {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        std::fputs(usage, args.empty() ? stderr : stdout);
        return args.empty() ? exit_failure : exit_ok;
    }
    if (args[0] == "list") return list_command(args, config_path);
    if (args[0] == "ack") return step_command(args, config_path, false);
    if (args[0] == "resolve") return step_command(args, config_path, true);
    std::fprintf(stderr, "wxrecond: discrepancies: unknown command \"%s\"\n%s", args[0].c_str(), usage);
    return exit_failure;
}

}  // namespace wxrecon::daemon
