#include "domain/facts.hpp"

#include <array>
#include <utility>

namespace wxrecon::domain {
namespace {

constexpr std::array<std::pair<trade_state, std::string_view>, 7> trade_state_names{{
    {trade_state::notpay, "NOTPAY"},
    {trade_state::userpaying, "USERPAYING"},
    {trade_state::success, "SUCCESS"},
    {trade_state::refund, "REFUND"},
    {trade_state::closed, "CLOSED"},
    {trade_state::revoked, "REVOKED"},
    {trade_state::payerror, "PAYERROR"},
}};

constexpr std::array<std::pair<refund_status, std::string_view>, 4> refund_status_names{{
    {refund_status::processing, "PROCESSING"},
    {refund_status::success, "SUCCESS"},
    {refund_status::closed, "CLOSED"},
    {refund_status::abnormal, "ABNORMAL"},
}};

template <class Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& table, Enum value) noexcept {
    for (const auto& [e, name] : table)
        if (e == value) return name;
    return "?";
}

template <class Enum, std::size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, N>& table,
                             std::string_view name) noexcept {
    for (const auto& [e, n] : table)
        if (n == name) return e;
    return std::nullopt;
}

}  // namespace

std::string_view to_string(trade_state s) noexcept {
    return name_of(trade_state_names, s);
}
std::string_view to_string(refund_status s) noexcept {
    return name_of(refund_status_names, s);
}
std::optional<trade_state> parse_trade_state(std::string_view s) noexcept {
    return value_of(trade_state_names, s);
}
std::optional<refund_status> parse_refund_status(std::string_view s) noexcept {
    return value_of(refund_status_names, s);
}

std::string_view to_string(fact_source s) noexcept {
    switch (s) {
        case fact_source::notify_v3:
            return "notify_v3";
        case fact_source::notify_v2:
            return "notify_v2";
        case fact_source::query_v3:
            return "query_v3";
        case fact_source::query_v2:
            return "query_v2";
        case fact_source::close:
            return "close";
        case fact_source::bill:
            return "bill";
        case fact_source::refund_query_v3:
            return "refund_query_v3";
        case fact_source::refund_query_v2:
            return "refund_query_v2";
    }
    return "?";
}

bool valid_out_trade_no(std::string_view s) noexcept {
    if (s.size() < 6 || s.size() > 32) return false;
    for (const char c : s) {
        const bool allowed = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             c == '_' || c == '-' || c == '|' || c == '*';
        if (!allowed) return false;
    }
    return true;
}

bool is_notification(fact_source s) noexcept {
    return s == fact_source::notify_v3 || s == fact_source::notify_v2;
}

const std::string& fact::out_trade_no() const noexcept {
    return std::visit([](const auto& b) -> const std::string& { return b.out_trade_no; }, body);
}

std::string_view to_string(discrepancy_kind k) noexcept {
    switch (k) {
        case discrepancy_kind::amount_mismatch:
            return "amount_mismatch";
        case discrepancy_kind::unknown_order:
            return "unknown_order";
        case discrepancy_kind::appid_mismatch:
            return "appid_mismatch";
        case discrepancy_kind::state_regression:
            return "state_regression";
        case discrepancy_kind::paid_after_close:
            return "paid_after_close";
        case discrepancy_kind::state_conflict:
            return "state_conflict";
        case discrepancy_kind::refund_without_payment:
            return "refund_without_payment";
        case discrepancy_kind::refund_abnormal:
            return "refund_abnormal";
        case discrepancy_kind::stuck:
            return "stuck";
        case discrepancy_kind::refund_stuck:
            return "refund_stuck";
    }
    return "?";
}

}  // namespace wxrecon::domain
