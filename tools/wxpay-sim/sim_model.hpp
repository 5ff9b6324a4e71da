// The simulator's ground truth: every order and refund WeChat Pay knows of,
// with the state machine the real service follows (prepay re-entry, payment,
// expiry, close, partial refunds). Pure and single-threaded; the server owns
// one instance and touches it only from its event loop.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/facts.hpp"
#include "protocol/v2.hpp"

namespace wxrecon::sim {

enum class api_version { v3, v2 };

struct refund_record {
    std::string out_refund_no;
    std::string refund_id;
    std::int64_t amount = 0;
    domain::refund_status status = domain::refund_status::processing;
    std::int64_t created_at = 0;  // Unix seconds
    std::int64_t success_at = 0;  // 0 until SUCCESS
    std::string reason;
    std::string notify_url;
};

struct order_record {
    std::string mchid;
    std::string out_trade_no;
    std::string appid;
    std::string description;
    std::string openid;
    std::string attach;
    std::string notify_url;
    std::int64_t amount_total = 0;
    api_version version = api_version::v3;
    protocol::v2::sign_type v2_sign = protocol::v2::sign_type::md5;
    domain::trade_state state = domain::trade_state::notpay;
    std::string transaction_id;
    std::int64_t payer_total =
        0;                    // the order's total as WeChat Pay knows it (what was paid, coupon included)
    std::int64_t coupon = 0;  // of which a merchant-funded coupon (代金券) covered this much
    std::int64_t fee_rate_bp = 60;  // WeChat Pay's fee rate when it was paid, in basis points
    std::int64_t created_at = 0;
    std::int64_t expire_at = 0;
    std::int64_t success_at = 0;
    std::string prepay_id;
    std::string prepay_fingerprint;  // the first prepay's parameters; re-entry must match
    std::vector<refund_record> refunds;

    std::int64_t refunded() const noexcept;  // sum of refunds not CLOSED
};

// What a merchant (or the control API) asks to create.
struct order_request {
    std::string mchid;
    std::string out_trade_no;
    std::string appid;
    std::string description;
    std::string openid;
    std::string attach;
    std::string notify_url;
    std::int64_t amount_total = 0;
    std::optional<std::int64_t> expire_at;  // absent: now + 7 days
    api_version version = api_version::v3;
    protocol::v2::sign_type v2_sign = protocol::v2::sign_type::md5;
    std::string fingerprint;  // identical parameters <=> identical fingerprint
};

enum class outcome {
    ok,
    not_found,      // ORDER_NOT_EXIST / ORDERNOTEXIST
    already_paid,   // ORDERPAID
    closed,         // ORDER_CLOSED / ORDERCLOSED
    params_differ,  // re-entry with other parameters
    invalid,        // a field is out of range
    not_enough,     // refund larger than what is left
    not_paid,       // refund of an unpaid order
    limit_reached,  // table full, or 50 refunds on one order
};
std::string_view to_string(outcome o) noexcept;

template <class T>
struct op_result {
    outcome code = outcome::ok;
    T* record = nullptr;
    std::string message;   // why, for the error body
    bool created = false;  // prepay/refund: a new record rather than a re-entry
};

class ledger_model {
public:
    static constexpr std::int64_t default_expiry_seconds = 7 * 24 * 3600;
    static constexpr std::size_t max_refunds_per_order = 50;

    explicit ledger_model(std::uint64_t seed, std::size_t max_orders = 2'000'000);

    // Creates the order, or returns it unchanged when the same parameters come again.
    op_result<order_record> prepay(const order_request& request, std::int64_t now);
    // Lazily applies expiry: an unpaid order past expire_at is CLOSED from then on.
    order_record* find(std::string_view mchid, std::string_view out_trade_no, std::int64_t now);
    order_record* find_by_transaction(std::string_view mchid, std::string_view transaction_id,
                                      std::int64_t now);
    // The user pays `amount` (the order total unless given). Only NOTPAY orders can be paid.
    op_result<order_record> pay(std::string_view mchid, std::string_view out_trade_no,
                                std::optional<std::int64_t> amount, std::int64_t now);
    // Merchant close: NOTPAY -> CLOSED; a paid order answers already_paid; a closed one closed.
    op_result<order_record> close(std::string_view mchid, std::string_view out_trade_no, std::int64_t now);
    // Time passes: the order's payment window ends now.
    op_result<order_record> expire(std::string_view mchid, std::string_view out_trade_no, std::int64_t now);
    // A refund request; the same out_refund_no with the same amount returns the existing refund.
    op_result<refund_record> refund(std::string_view mchid, std::string_view out_trade_no,
                                    std::string_view out_refund_no, std::int64_t amount,
                                    std::string_view reason, std::string_view notify_url, std::int64_t now);
    // Moves a PROCESSING refund to its final status.
    op_result<refund_record> finish_refund(std::string_view mchid, std::string_view out_refund_no,
                                           domain::refund_status status, std::int64_t now);
    refund_record* find_refund(std::string_view mchid, std::string_view out_refund_no,
                               order_record** order = nullptr);
    refund_record* find_refund_by_id(std::string_view mchid, std::string_view refund_id,
                                     order_record** order = nullptr);

    std::size_t size() const noexcept { return orders_.size(); }
    // One merchant's orders (the bills are made from them).
    std::vector<const order_record*> orders_of(std::string_view mchid) const;
    // Every order with its refunds, as JSON: the truth a test compares the merchant's ledger with.
    std::string ledger_json() const;

private:
    static std::string key(std::string_view mchid, std::string_view id);  // "mchid\0id"
    order_record* lookup(std::string_view mchid, std::string_view out_trade_no);
    void apply_expiry(order_record& o, std::int64_t now);
    std::string next_id(std::string_view prefix, std::size_t digits);

    std::uint64_t seed_;
    std::uint64_t counter_ = 0;
    std::size_t max_orders_;
    std::map<std::string, order_record> orders_;         // key(mchid, out_trade_no)
    std::map<std::string, std::string> by_transaction_;  // key(mchid, transaction_id) -> order key
    std::map<std::string, std::string> by_refund_;       // key(mchid, out_refund_no) -> order key
    std::map<std::string, std::string> by_refund_id_;    // key(mchid, refund_id) -> out_refund_no
};

}  // namespace wxrecon::sim
