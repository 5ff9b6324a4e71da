// The bill parser: line framing (BOM, CRLF, a bound on line length), the header line that picks the
// format, value lines split on ",`", typed columns, and the summary check at the end. Each column is
// described once, in a table (its header name, its type, where its value goes), and the parser is
// driven by those tables; a bill type is a set of column names.
#include "protocol/bill.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>

#include "base/encoding.hpp"
#include "base/utf8.hpp"
#include "protocol/bill_columns.hpp"

namespace wxrecon::protocol::bill {

namespace {

using namespace detail;

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";
constexpr char back_tick = '`';
// Every value starts with a back-tick, so a value boundary is a comma followed by one; a comma alone
// belongs to the value (商品名称, 商户数据包 and 备注 are free text).
constexpr std::string_view value_separator = ",`";

// ---- Text helpers --------------------------------------------------------------------------------

// "a NUL byte at byte 4 of the value", "invalid UTF-8 at byte 7 of the header line".
std::string bad_utf8_message(std::string_view s, std::size_t at, std::string_view of_what) {
    const char* what = s[at] == '\0' ? "a NUL byte" : "invalid UTF-8";
    return std::string(what) + " at byte " + std::to_string(at + 1) + " of the " + std::string(of_what);
}

std::string line_at(std::int64_t line) {
    return "line " + std::to_string(line);
}

std::string column_at(std::int64_t line, std::size_t column, std::string_view name = {}) {
    std::string where = line_at(line) + ", column " + std::to_string(column);
    if (!name.empty()) where += " (" + std::string(name) + ")";
    return where;
}

error parse_failure(std::string message) {
    return make_error(errc::parse_error, std::move(message));
}

// "a,b,c" -> {"a","b","c"}, at most max_fields + 1 pieces (enough to tell "too many").
void split_header(std::string_view line, std::size_t max_fields, std::vector<std::string_view>& out) {
    out.clear();
    while (out.size() <= max_fields) {
        const std::size_t comma = line.find(',');
        out.push_back(line.substr(0, comma));
        if (comma == std::string_view::npos) break;
        line.remove_prefix(comma + 1);
    }
}

// "`a,`b,c,`d" -> {"a", "b,c", "d"}: one leading back-tick per value, removed. The line starts with one.
void split_values(std::string_view line, std::size_t max_fields, std::vector<std::string_view>& out) {
    out.clear();
    line.remove_prefix(1);
    while (out.size() <= max_fields) {
        const std::size_t boundary = line.find(value_separator);
        out.push_back(line.substr(0, boundary));
        if (boundary == std::string_view::npos) break;
        line.remove_prefix(boundary + value_separator.size());
    }
}

// Parses `value` as `spec` says and stores it in `record`; the error says what is wrong with the value.
template <class Record>
std::optional<error> store_value(Record& record, const column_spec<Record>& spec, std::string_view value) {
    const auto store_number = [&](result<std::int64_t> parsed) -> std::optional<error> {
        if (!parsed) return parsed.err();
        record.*spec.number = *parsed;
        return std::nullopt;
    };
    switch (spec.type) {
        case value_type::text:
        case value_type::free_text:
            record.*spec.text = value;
            return std::nullopt;
        case value_type::amount:
            return store_number(parse_yuan(value));
        case value_type::signed_amount:
            return store_number(parse_signed_yuan(value));
        case value_type::fee:
            return store_number(parse_fee(value));
        case value_type::count:
            return store_number(parse_count(value));
        case value_type::time:
        case value_type::optional_time: {
            if (value.empty() && spec.type == value_type::optional_time) {
                record.*spec.optional_number = std::nullopt;
                return std::nullopt;
            }
            if (spec.number != nullptr) return store_number(parse_beijing_datetime(value));
            auto parsed = parse_beijing_datetime(value);
            if (!parsed) return parsed.err();
            record.*spec.optional_number = *parsed;
            return std::nullopt;
        }
        case value_type::direction:
            if (value == "收入") {
                record.*spec.direction = fund_direction::income;
            } else if (value == "支出") {
                record.*spec.direction = fund_direction::expense;
            } else {
                return parse_failure(log_quote(value, 40) + " is neither 收入 nor 支出");
            }
            return std::nullopt;
    }
    return std::nullopt;
}

// The written value of a summary field in its own notation: "7", "202.91", "1.21746".
std::string format_total(value_type type, std::int64_t value) {
    if (type == value_type::count) return std::to_string(value);
    return type == value_type::fee ? format_fee(value) : format_yuan(value);
}

std::int64_t fraction_digits(std::string_view number) {
    const std::size_t point = number.find('.');
    return point == std::string_view::npos ? 0 : static_cast<std::int64_t>(number.size() - point - 1);
}

// 手续费总金额 against the sum of 手续费: the SDK sample writes the total with 2 decimals (0.08) while the
// rows have 5 (0.01000), so the summary is the sum rounded to the decimals it is written with, and to
// at least fen. Half a unit either way is accepted: the rounding rule for an exact half is not known.
bool fee_total_matches(std::int64_t written, std::int64_t written_decimals, std::int64_t row_sum) {
    std::int64_t unit = 1;
    for (std::int64_t d = std::max<std::int64_t>(written_decimals, 2); d < 5; ++d) unit *= 10;
    std::int64_t difference = 0;
    if (__builtin_sub_overflow(written, row_sum, &difference)) return false;
    if (difference == std::numeric_limits<std::int64_t>::min()) return false;
    return (difference < 0 ? -difference : difference) <= unit / 2;  // unit is a power of ten
}

bool checked_add(std::int64_t& total, std::int64_t value) {
    return !__builtin_add_overflow(total, value, &total);
}

}  // namespace

// ---- The parser ------------------------------------------------------------------------------------

struct bill_parser::state {
    enum class stage { header, details, summary_values, after_summary };

    row_handlers handlers;
    std::optional<bill_kind> expected;
    parser_limits limits;

    std::string pending;  // the incomplete last line, at most limits.max_line_bytes
    std::int64_t line = 0;
    stage at = stage::header;
    std::optional<error> failure;
    bool finished = false;

    bill_kind kind = bill_kind::trade;
    trade_format format{};
    // Column i of the file -> its spec; exactly one of each pair is used, by kind.
    std::vector<const column_spec<trade_row>*> trade_layout;
    std::vector<const column_spec<fundflow_row>*> fund_layout;
    std::vector<const column_spec<trade_totals>*> trade_summary_layout;
    std::vector<const column_spec<fundflow_totals>*> fund_summary_layout;
    std::vector<std::string_view> detail_names;  // column i -> its header name (the table's copy)
    std::vector<bool> detail_free_text;
    std::vector<std::string_view> summary_names;
    std::vector<std::string_view> fields;  // scratch, reused for every line

    trade_row trade;
    fundflow_row fund;
    trade_totals trade_sum;
    fundflow_totals fund_sum;
    std::optional<std::int64_t> previous_balance;
    std::int64_t previous_balance_line = 0;

    // Remembers the first error, which every later call returns again.
    error fail(error e) {
        failure = std::move(e);
        return *failure;
    }

    status on_line(std::string_view text);
    status on_header(std::string_view text);
    template <class Record, std::size_t N>
    status read_header_columns(const std::array<column_spec<Record>, N>& table,
                               std::vector<const column_spec<Record>*>& layout, column_set& seen);
    status on_summary_header(std::string_view text);
    template <class Totals, std::size_t N>
    status read_summary_header(const std::array<column_spec<Totals>, N>& table, column_set allowed,
                               std::vector<const column_spec<Totals>*>& layout, const std::string& bill_name);
    status split_value_line(std::string_view text, const std::vector<std::string_view>& names,
                            const std::vector<bool>& free_text);
    template <class Record>
    status read_values(Record& record, const std::vector<const column_spec<Record>*>& layout);
    status on_trade_line();
    status on_fund_line();
    template <class Totals>
    status check_summary(const Totals& totals, const std::vector<const column_spec<Totals>*>& layout);
    result<bill_totals> end();
};

status bill_parser::state::on_line(std::string_view text) {
    ++line;
    if (text.ends_with('\r')) text.remove_suffix(1);
    if (line == 1 && text.starts_with(utf8_bom)) text.remove_prefix(utf8_bom.size());
    switch (at) {
        case stage::header:
            if (text.empty()) {
                return parse_failure(line_at(line) + ": empty where the bill's header line belongs");
            }
            if (text.front() == back_tick) {
                return parse_failure(line_at(line) + ": a value line where the bill's header line belongs");
            }
            return on_header(text);
        case stage::details:
            if (text.empty()) return parse_failure(line_at(line) + ": an empty line among the detail lines");
            if (text.front() != back_tick) return on_summary_header(text);
            if (auto split = split_value_line(text, detail_names, detail_free_text); !split) return split;
            return kind == bill_kind::trade ? on_trade_line() : on_fund_line();
        case stage::summary_values: {
            if (text.empty() || text.front() != back_tick) {
                return parse_failure(line_at(line) +
                                     ": the summary line (values starting with a back-tick) must follow the "
                                     "summary header");
            }
            if (auto split = split_value_line(text, summary_names, std::vector<bool>(summary_names.size()));
                !split) {
                return split;
            }
            auto checked = kind == bill_kind::trade ? check_summary(trade_sum, trade_summary_layout)
                                                    : check_summary(fund_sum, fund_summary_layout);
            if (checked) at = stage::after_summary;
            return checked;
        }
        case stage::after_summary:
            if (!text.empty()) return parse_failure(line_at(line) + ": text after the summary line");
            return ok;
    }
    return ok;
}

status bill_parser::state::on_header(std::string_view text) {
    if (const std::size_t bad = first_bad_utf8(text); bad != std::string_view::npos) {
        return parse_failure(line_at(line) + ": " + bad_utf8_message(text, bad, "header line"));
    }
    split_header(text, limits.max_fields, fields);
    if (fields.size() > limits.max_fields) {
        return parse_failure(line_at(line) + ": more than " + std::to_string(limits.max_fields) + " columns");
    }
    std::size_t trade_known = 0, fund_known = 0;
    for (std::string_view name : fields) {
        if (std::ranges::find(legacy_trade_columns, name) != legacy_trade_columns.end()) {
            return parse_failure(line_at(line) + ": the older trade bill layout (column \"" +
                                 std::string(name) +
                                 "\") is not supported; only the current ALL/SUCCESS/REFUND columns are");
        }
        trade_known += find_column(trade_columns, name) != nullptr;
        fund_known += find_column(fund_columns, name) != nullptr;
    }
    if (trade_known == 0 && fund_known == 0) {
        return parse_failure(line_at(line) + ": not a WeChat Pay bill header: no column name is known (" +
                             log_quote(fields.front(), 40) + " ...)");
    }
    kind = trade_known >= fund_known ? bill_kind::trade : bill_kind::fundflow;
    column_set seen = 0;
    auto columns = kind == bill_kind::trade ? read_header_columns(trade_columns, trade_layout, seen)
                                            : read_header_columns(fund_columns, fund_layout, seen);
    if (!columns) return columns;
    if (expected && *expected != kind) {
        return parse_failure(line_at(line) + ": this is a " +
                             (kind == bill_kind::trade ? "trade" : "fund-flow") + " bill, not the " +
                             (*expected == bill_kind::trade ? "trade" : "fund-flow") + " bill asked for");
    }
    if (kind == bill_kind::fundflow) {
        if (seen != all_of(fund_columns)) {
            return parse_failure(line_at(line) + ": the fund-flow bill header lacks column " +
                                 first_name_in(fund_columns, all_of(fund_columns) & ~seen));
        }
        at = stage::details;
        return ok;
    }
    // The set of columns, not their order, names the bill type.
    const trade_format* closest = &trade_formats[0];
    for (const auto& candidate : trade_formats) {
        if (candidate.detail == seen) {
            format = candidate;
            trade_sum.bill_type = candidate.type;
            at = stage::details;
            return ok;
        }
        if (std::popcount(candidate.detail ^ seen) < std::popcount(closest->detail ^ seen))
            closest = &candidate;
    }
    const column_set missing = closest->detail & ~seen;
    const std::string what =
        missing != 0 ? "lacks column " + first_name_in(trade_columns, missing)
                     : "has the extra column " + first_name_in(trade_columns, seen & ~closest->detail);
    return parse_failure(line_at(line) +
                         ": the columns are those of no trade bill type (ALL, SUCCESS, REFUND): " +
                         "nearest is " + to_string(closest->type) + ", which " + what);
}

template <class Record, std::size_t N>
status bill_parser::state::read_header_columns(const std::array<column_spec<Record>, N>& table,
                                               std::vector<const column_spec<Record>*>& layout,
                                               column_set& seen) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::size_t index = index_of(table, fields[i]);
        if (index == N) {
            return parse_failure(column_at(line, i + 1) + ": " + log_quote(fields[i], 60) +
                                 " is not a column of a " +
                                 (kind == bill_kind::trade ? "trade" : "fund-flow") + " bill");
        }
        if ((seen >> index) & 1U) {
            return parse_failure(column_at(line, i + 1) + ": column \"" + std::string(fields[i]) +
                                 "\" appears twice");
        }
        seen |= column_set{1} << index;
        layout.push_back(&table[index]);
        detail_names.push_back(table[index].name);  // the line's bytes do not outlive this call
        detail_free_text.push_back(table[index].type == value_type::free_text);
    }
    return ok;
}

status bill_parser::state::on_summary_header(std::string_view text) {
    if (const std::size_t bad = first_bad_utf8(text); bad != std::string_view::npos) {
        return parse_failure(line_at(line) + ": " + bad_utf8_message(text, bad, "line"));
    }
    split_header(text, limits.max_fields, fields);
    // A line without a back-tick that does not start with a summary field's name is a detail line whose
    // first value lost its back-tick.
    const auto is_summary_field = [this](std::string_view name) {
        if (kind == bill_kind::fundflow)
            return index_of(fund_summary_fields, name) < fund_summary_fields.size();
        const std::size_t index = index_of(trade_summary_fields, name);
        return index < trade_summary_fields.size() && ((format.summary >> index) & 1U) != 0;
    };
    if (!is_summary_field(fields.front())) {
        return parse_failure(column_at(line, 1, detail_names.front()) +
                             ": the value does not start with a back-tick");
    }
    if (fields.size() > limits.max_fields) {
        return parse_failure(line_at(line) + ": more than " + std::to_string(limits.max_fields) + " columns");
    }
    if (kind == bill_kind::trade) {
        return read_summary_header(trade_summary_fields, format.summary, trade_summary_layout,
                                   std::string(to_string(format.type)) + " trade bill");
    }
    return read_summary_header(fund_summary_fields, all_of(fund_summary_fields), fund_summary_layout,
                               "fund-flow bill");
}

template <class Totals, std::size_t N>
status bill_parser::state::read_summary_header(const std::array<column_spec<Totals>, N>& table,
                                               column_set allowed,
                                               std::vector<const column_spec<Totals>*>& layout,
                                               const std::string& bill_name) {
    column_set seen = 0;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::size_t index = index_of(table, fields[i]);
        if (index == N || !((allowed >> index) & 1U)) {
            return parse_failure(column_at(line, i + 1) + ": " + log_quote(fields[i], 60) +
                                 " is not a summary field of the " + bill_name);
        }
        if ((seen >> index) & 1U) {
            return parse_failure(column_at(line, i + 1) + ": summary field \"" + std::string(fields[i]) +
                                 "\" appears twice");
        }
        seen |= column_set{1} << index;
        layout.push_back(&table[index]);
        summary_names.push_back(table[index].name);
    }
    if (seen != allowed) {
        return parse_failure(line_at(line) + ": the summary header of the " + bill_name + " lacks " +
                             first_name_in(table, allowed & ~seen));
    }
    at = stage::summary_values;
    return ok;
}

status bill_parser::state::split_value_line(std::string_view text, const std::vector<std::string_view>& names,
                                            const std::vector<bool>& free_text) {
    const std::size_t column_count = names.size();
    split_values(text, limits.max_fields, fields);
    if (fields.size() > column_count) {
        return parse_failure(column_at(line, column_count + 1) + ": more values than the header's " +
                             std::to_string(column_count) + " columns");
    }
    if (fields.size() < column_count) {
        // A value without its back-tick does not end the value before it, so it shows as a comma inside a
        // column that cannot hold one; otherwise the line just lacks values.
        for (std::size_t i = 0; i < fields.size(); ++i) {
            if (!free_text[i] && fields[i].find(',') != std::string_view::npos) {
                return parse_failure(column_at(line, i + 2, names[i + 1]) +
                                     ": the value does not start with a back-tick");
            }
        }
        return parse_failure(line_at(line) + ": " + std::to_string(fields.size()) +
                             " values where the header has " + std::to_string(column_count) + " columns");
    }
    // Values split at ASCII bytes, which are never inside a character: a clean line has clean values.
    if (first_bad_utf8(text) == std::string_view::npos) return ok;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (const std::size_t bad = first_bad_utf8(fields[i]); bad != std::string_view::npos) {
            return parse_failure(column_at(line, i + 1, names[i]) + ": " +
                                 bad_utf8_message(fields[i], bad, "value"));
        }
    }
    return ok;
}

template <class Record>
status bill_parser::state::read_values(Record& record,
                                       const std::vector<const column_spec<Record>*>& layout) {
    // Reused, not reset: every column of the layout is written below, and the strings keep their capacity.
    record.line = line;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (auto bad = store_value(record, *layout[i], fields[i])) {
            return parse_failure(column_at(line, i + 1, layout[i]->name) + ": " + bad->message);
        }
    }
    return ok;
}

status bill_parser::state::on_trade_line() {
    if (auto read = read_values(trade, trade_layout); !read) return read;
    // ALL bills mix both kinds and say which by 交易状态; the other two hold one kind by definition.
    if (format.type == trade_bill_type::all) {
        if (trade.trade_state == "SUCCESS") {
            trade.kind = trade_row_kind::payment;
        } else if (trade.trade_state == "REFUND") {
            trade.kind = trade_row_kind::refund;
        } else {
            const std::size_t column = static_cast<std::size_t>(
                std::ranges::find(detail_names, std::string_view("交易状态")) - detail_names.begin());
            return parse_failure(column_at(line, column + 1, "交易状态") + ": " +
                                 log_quote(trade.trade_state, 40) + " is neither SUCCESS nor REFUND");
        }
    } else {
        trade.kind =
            format.type == trade_bill_type::refund ? trade_row_kind::refund : trade_row_kind::payment;
    }

    ++trade_sum.rows;
    ++(trade.kind == trade_row_kind::payment ? trade_sum.payment_rows : trade_sum.refund_rows);
    const bool fits =
        checked_add(trade_sum.settlement_total_fen, trade.settlement_amount_fen) &&
        checked_add(trade_sum.coupon_total_fen, trade.coupon_amount_fen) &&
        checked_add(trade_sum.refund_total_fen, trade.refund_amount_fen) &&
        checked_add(trade_sum.recharge_coupon_refund_total_fen, trade.recharge_coupon_refund_fen) &&
        checked_add(trade_sum.order_total_fen, trade.order_amount_fen) &&
        checked_add(trade_sum.refund_requested_total_fen, trade.refund_requested_amount_fen) &&
        checked_add(trade_sum.fee_total, trade.fee);
    if (!fits) return parse_failure(line_at(line) + ": the running totals overflow");
    return handlers.trade ? handlers.trade(trade) : status{ok};
}

status bill_parser::state::on_fund_line() {
    if (auto read = read_values(fund, fund_layout); !read) return read;
    ++fund_sum.rows;
    const bool income = fund.direction == fund_direction::income;
    ++(income ? fund_sum.income_rows : fund_sum.expense_rows);
    if (!checked_add(income ? fund_sum.income_total_fen : fund_sum.expense_total_fen, fund.amount_fen)) {
        return parse_failure(line_at(line) + ": the running totals overflow");
    }

    // The balance chain: each 账户结余 should be the one before plus income or minus expense.
    if (previous_balance) {
        std::int64_t expected_balance = 0;
        const bool fits =
            income ? !__builtin_add_overflow(*previous_balance, fund.amount_fen, &expected_balance)
                   : !__builtin_sub_overflow(*previous_balance, fund.amount_fen, &expected_balance);
        if (!fits || expected_balance != fund.balance_fen) {
            ++fund_sum.balance_breaks;
            if (fund_sum.balance_warnings.size() < limits.max_warnings) {
                fund_sum.balance_warnings.push_back(
                    line_at(line) + ": 账户结余 " + format_yuan(fund.balance_fen) + " does not follow from " +
                    line_at(previous_balance_line) + " (" + format_yuan(*previous_balance) +
                    (income ? " + " : " - ") + format_yuan(fund.amount_fen) +
                    (fits ? " = " + format_yuan(expected_balance) : "") + ")");
            }
        }
    }
    previous_balance = fund.balance_fen;
    previous_balance_line = line;
    return handlers.fundflow ? handlers.fundflow(fund) : status{ok};
}

template <class Totals>
status bill_parser::state::check_summary(const Totals& totals,
                                         const std::vector<const column_spec<Totals>*>& layout) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const column_spec<Totals>& field = *layout[i];
        const std::string_view written = fields[i];
        const auto parsed = field.type == value_type::count ? parse_count(written)
                            : field.type == value_type::fee ? parse_fee(written)
                                                            : parse_yuan(written);
        if (!parsed) return parse_failure(column_at(line, i + 1, field.name) + ": " + parsed.err().message);
        const std::int64_t counted = totals.*field.number;
        const bool matches = field.type == value_type::fee
                                 ? fee_total_matches(*parsed, fraction_digits(written), counted)
                                 : *parsed == counted;
        if (!matches) {
            return parse_failure("summary field " + std::string(field.name) + " (" + column_at(line, i + 1) +
                                 "): the bill says " + std::string(written) +
                                 ", its detail lines add up to " + format_total(field.type, counted));
        }
    }
    return ok;
}

result<bill_totals> bill_parser::state::end() {
    switch (at) {
        case stage::header:
            return parse_failure(line == 0 ? "the file is empty" : line_at(line) + ": no header line");
        case stage::details:
            return parse_failure("the file ends after " + line_at(line) +
                                 " without a summary: truncated, or not a complete bill");
        case stage::summary_values:
            return parse_failure("the file ends after the summary header on " + line_at(line) +
                                 ", without the summary line");
        case stage::after_summary:
            break;
    }
    if (kind == bill_kind::trade) return bill_totals{trade_sum};
    return bill_totals{fund_sum};
}

bill_parser::bill_parser(row_handlers handlers, std::optional<bill_kind> expected, parser_limits limits)
    : state_(std::make_unique<state>()) {
    state_->handlers = std::move(handlers);
    state_->expected = expected;
    state_->limits = limits;
}

bill_parser::~bill_parser() = default;
bill_parser::bill_parser(bill_parser&&) noexcept = default;
bill_parser& bill_parser::operator=(bill_parser&&) noexcept = default;

status bill_parser::feed(std::string_view bytes) {
    state& s = *state_;
    if (s.failure) return *s.failure;
    if (s.finished) return s.fail(make_error(errc::internal, "bill_parser: feed() after finish()"));
    const std::size_t max = s.limits.max_line_bytes;
    while (!bytes.empty()) {
        const std::size_t newline = bytes.find('\n');
        const std::string_view piece = bytes.substr(0, newline);
        // Checked before buffering, so the buffer never holds more than one line's limit.
        if (s.pending.size() + piece.size() > max) {
            return s.fail(
                parse_failure(line_at(s.line + 1) + ": longer than " + std::to_string(max) + " bytes"));
        }
        if (newline == std::string_view::npos) {
            s.pending.append(piece);
            break;
        }
        bytes.remove_prefix(newline + 1);
        status handled = ok;
        if (s.pending.empty()) {
            handled = s.on_line(piece);  // the common case: the whole line is in this chunk, no copy
        } else {
            s.pending.append(piece);
            handled = s.on_line(s.pending);
            s.pending.clear();
        }
        if (!handled) return s.fail(handled.err());
    }
    return ok;
}

result<bill_totals> bill_parser::finish() {
    state& s = *state_;
    if (s.failure) return *s.failure;
    if (s.finished) return s.fail(make_error(errc::internal, "bill_parser: finish() twice"));
    s.finished = true;
    if (!s.pending.empty()) {  // the last line had no line break
        const std::string last = std::move(s.pending);
        s.pending.clear();
        if (auto handled = s.on_line(last); !handled) return s.fail(handled.err());
    }
    auto totals = s.end();
    if (!totals) s.failure = totals.err();
    return totals;
}

result<bill_totals> parse_bill(std::string_view text, row_handlers handlers,
                               std::optional<bill_kind> expected) {
    bill_parser parser(std::move(handlers), expected);
    if (auto fed = parser.feed(text); !fed) return fed.err();
    return parser.finish();
}

}  // namespace wxrecon::protocol::bill
