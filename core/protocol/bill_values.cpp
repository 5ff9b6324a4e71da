// The scalar values of a bill: yuan amounts, fees, counts and Beijing times, read exactly from their
// decimal text (never through a floating-point number) and written back the same way.
#include <optional>
#include <string>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "protocol/bill.hpp"

#include "base/json_writer.hpp"  // after the others: this file has no header of its own
#include "protocol/bill_columns.hpp"

namespace wxrecon::protocol::bill {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

error value_error(std::string_view text, std::string_view what) {
    return make_error(errc::parse_error, log_quote(text, 40) + " " + std::string(what));
}

// A decimal number "[-]digits[.digits]" scaled to `scale` decimal places: "0.08" at scale 5 is 8000.
// At most max_decimals digits after the point; the integer part has no leading zero (except "0").
// `shown` is the text quoted in messages (the caller may have cut a suffix off `text`).
result<std::int64_t> parse_scaled(std::string_view text, int max_decimals, int scale, bool allow_minus,
                                  std::string_view what, std::string_view shown) {
    if (text.empty()) return value_error(shown, "is empty where " + std::string(what) + " is required");
    std::string_view digits = text;
    const bool negative = digits.front() == '-';
    if (digits.front() == '-' || digits.front() == '+') {
        if (!allow_minus || !negative) return value_error(shown, "has a sign where none is allowed");
        digits.remove_prefix(1);
    }
    const std::size_t point = digits.find('.');
    const std::string_view whole = digits.substr(0, point);
    const std::string_view fraction =
        point == std::string_view::npos ? std::string_view{} : digits.substr(point + 1);
    const auto all_digits = [](std::string_view s) {
        for (char c : s)
            if (!is_digit(c)) return false;
        return true;
    };
    if (whole.empty() || !all_digits(whole) || !all_digits(fraction) ||
        (point != std::string_view::npos && fraction.empty())) {
        return value_error(shown, "is not " + std::string(what));
    }
    if (whole.size() > 1 && whole.front() == '0') return value_error(shown, "has a leading zero");
    if (fraction.size() > static_cast<std::size_t>(max_decimals)) {
        return value_error(shown, "has more than " + std::to_string(max_decimals) + " decimals");
    }
    std::int64_t value = 0;
    const auto push_digit = [&value](char c) {
        return !__builtin_mul_overflow(value, 10, &value) && !__builtin_add_overflow(value, c - '0', &value);
    };
    bool fits = true;
    for (char c : whole) fits = fits && push_digit(c);
    for (char c : fraction) fits = fits && push_digit(c);
    for (int i = static_cast<int>(fraction.size()); i < scale; ++i) fits = fits && push_digit('0');
    if (!fits) return value_error(shown, "is too large");
    return negative ? -value : value;
}

// Reads exactly `count` ASCII digits at `pos`.
std::optional<int> read_digits(std::string_view text, std::size_t pos, std::size_t count) {
    if (pos + count > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        if (!is_digit(text[i])) return std::nullopt;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

std::string format_scaled(std::int64_t value, int decimals) {
    // Through the unsigned magnitude, so the most negative value formats too.
    const bool negative = value < 0;
    const std::uint64_t magnitude =
        negative ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
    std::uint64_t scale = 1;
    for (int i = 0; i < decimals; ++i) scale *= 10;
    std::string out = negative ? "-" : "";
    out += std::to_string(magnitude / scale);
    if (decimals > 0) {
        const std::string fraction = std::to_string(magnitude % scale);
        out += '.';
        out.append(static_cast<std::size_t>(decimals) - fraction.size(), '0');
        out += fraction;
    }
    return out;
}

}  // namespace

result<std::int64_t> parse_yuan(std::string_view text) {
    return parse_scaled(text, 2, 2, false, "an amount", text);
}

result<std::int64_t> parse_signed_yuan(std::string_view text) {
    return parse_scaled(text, 2, 2, true, "an amount", text);
}

result<std::int64_t> parse_fee(std::string_view text) {
    return parse_scaled(text, 5, 5, true, "a fee", text);
}

result<std::int64_t> parse_count(std::string_view text) {
    // "45.0": the SDK fixture and the fund-flow samples write counts with a zero fraction.
    const std::size_t point = text.find('.');
    if (point == std::string_view::npos) return parse_scaled(text, 0, 0, false, "a count", text);
    const std::string_view fraction = text.substr(point + 1);
    if (fraction.empty() || fraction.find_first_not_of('0') != std::string_view::npos) {
        return value_error(text, "is not a whole number");
    }
    return parse_scaled(text.substr(0, point), 0, 0, false, "a count", text);
}

result<std::int64_t> parse_beijing_datetime(std::string_view text) {
    const auto year = read_digits(text, 0, 4);
    const auto month = read_digits(text, 5, 2);
    const auto day = read_digits(text, 8, 2);
    const auto hour = read_digits(text, 11, 2);
    const auto minute = read_digits(text, 14, 2);
    const auto second = read_digits(text, 17, 2);
    const bool layout = text.size() == 19 && text[4] == '-' && text[7] == '-' && text[10] == ' ' &&
                        text[13] == ':' && text[16] == ':';
    if (!layout || !year || !month || !day || !hour || !minute || !second) {
        return value_error(text, "is not a time yyyy-MM-dd HH:mm:ss");
    }
    const auto unix = civil_to_unix(*year, *month, *day, *hour, *minute, *second);
    if (!unix) return value_error(text, "is not a real date and time");
    return *unix - beijing_offset_seconds;
}

std::string format_fee(std::int64_t fee_units) {
    return format_scaled(fee_units, 5);
}

std::string format_yuan(std::int64_t fen) {
    return format_scaled(fen, 2);
}

const char* to_string(bill_kind kind) noexcept {
    return kind == bill_kind::trade ? "trade" : "fundflow";
}

const char* to_string(trade_bill_type type) noexcept {
    switch (type) {
        case trade_bill_type::all:
            return "ALL";
        case trade_bill_type::success:
            return "SUCCESS";
        case trade_bill_type::refund:
            return "REFUND";
    }
    return "?";
}

std::optional<bill_kind> parse_bill_kind(std::string_view text) noexcept {
    if (text == "trade") return bill_kind::trade;
    if (text == "fundflow") return bill_kind::fundflow;
    return std::nullopt;
}

namespace {

std::string trade_json(const trade_totals& t) {
    return json_object{}
        .add("kind", "trade")
        .add("bill_type", to_string(t.bill_type))
        .add("rows", t.rows)
        .add("payment_rows", t.payment_rows)
        .add("refund_rows", t.refund_rows)
        .add("settlement_total_fen", t.settlement_total_fen)
        .add("refund_total_fen", t.refund_total_fen)
        .add("order_total_fen", t.order_total_fen)
        .add("refund_requested_total_fen", t.refund_requested_total_fen)
        .add("fee_total", format_fee(t.fee_total))
        .add("summary_matches", true)
        .str();
}

std::string fundflow_json(const fundflow_totals& f) {
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

}  // namespace

std::string totals_json(const bill_totals& totals) {
    if (const auto* trade = std::get_if<trade_totals>(&totals)) return trade_json(*trade);
    return fundflow_json(std::get<fundflow_totals>(totals));
}

}  // namespace wxrecon::protocol::bill
