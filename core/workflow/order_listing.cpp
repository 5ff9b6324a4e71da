#include "workflow/order_listing.hpp"

#include <charconv>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "domain/facts.hpp"
#include "store/order_store.hpp"
#include "workflow/api_reply.hpp"

namespace wxrecon::workflow {
namespace {

constexpr int default_limit = 50;
constexpr int max_limit = 500;
constexpr auto database_deadline = std::chrono::seconds(5);

// The cursor is the last order's position, Base64url without padding: opaque to the application, and
// safe in a query string as it is.
std::string encode_cursor(const store::order_list_position& p) {
    std::string text = base64_encode(std::to_string(p.created_at) + '\n' + p.mchid + '\n' + p.out_trade_no);
    for (auto& c : text) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!text.empty() && text.back() == '=') text.pop_back();
    return text;
}

std::optional<store::order_list_position> decode_cursor(std::string text) {
    for (auto& c : text) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (text.size() % 4 != 0) text.push_back('=');
    const auto plain = base64_decode(text);
    if (!plain) return std::nullopt;
    const auto first = plain->find('\n'), second = plain->find('\n', first + 1);
    if (first == std::string::npos || second == std::string::npos) return std::nullopt;
    store::order_list_position p;
    const auto [end, ec] = std::from_chars(plain->data(), plain->data() + first, p.created_at);
    if (ec != std::errc{} || end != plain->data() + first) return std::nullopt;
    p.mchid = plain->substr(first + 1, second - first - 1);
    p.out_trade_no = plain->substr(second + 1);
    return p;
}

std::optional<domain::micros> parse_time(const std::string& value) {
    const auto seconds = parse_rfc3339(value);
    if (!seconds) return std::nullopt;
    return *seconds * 1'000'000;
}

}  // namespace

boost::asio::awaitable<reply> list_orders(store::db_pool& pool, std::string_view query) {
    const auto params = parse_query(query);
    if (!params) co_return json_error(400, params.err().message);
    store::order_list_filter filter;
    filter.limit = default_limit;
    for (const auto& [name, value] : *params) {
        if (name == "mchid") {
            filter.mchid = value;
        } else if (name == "state") {
            if (!domain::parse_trade_state(value))
                co_return json_error(400,
                                     "state: one of NOTPAY, USERPAYING, SUCCESS, REFUND, CLOSED, REVOKED, "
                                     "PAYERROR");
            filter.state = value;
        } else if (name == "since" || name == "until") {
            const auto at = parse_time(value);
            if (!at) co_return json_error(400, name + ": an RFC 3339 time with its offset required");
            (name == "since" ? filter.since : filter.until) = at;
        } else if (name == "cursor") {
            filter.after = decode_cursor(value);
            if (!filter.after) co_return json_error(400, "cursor: not a next_cursor this API gave");
        } else if (name == "limit") {
            int limit = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
            if (ec != std::errc{} || end != value.data() + value.size() || limit < 1 || limit > max_limit)
                co_return json_error(400, "limit: an integer from 1 to 500 required");
            filter.limit = limit;
        } else {
            co_return json_error(400, "unknown parameter " + name);
        }
    }
    const auto page = co_await store::list_orders(pool, std::move(filter),
                                                  std::chrono::steady_clock::now() + database_deadline);
    std::string orders = "[";
    for (const auto& o : page.orders_json) orders += (orders.size() > 1 ? "," : "") + o;
    orders += "]";
    json_object body;
    body.add_raw("orders", orders);
    page.next ? body.add("next_cursor", encode_cursor(*page.next)) : body.add_null("next_cursor");
    co_return reply{200, "application/json", body.str()};
}

}  // namespace wxrecon::workflow
