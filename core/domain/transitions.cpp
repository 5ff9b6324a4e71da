#include "domain/transitions.hpp"

#include <limits>

namespace wxrecon::domain {
namespace {

bool is_paid(trade_state s) noexcept {
    return s == trade_state::success || s == trade_state::refund;
}

// An observation that contradicts the record: older than it (stale) or a newer report of an older state.
decision contradicts(micros observed_at, micros recorded_at) {
    decision d;
    if (observed_at < recorded_at) {
        d.result = outcome::stale;
    } else {
        d.result = outcome::regression;
        d.open.push_back(discrepancy_kind::state_regression);
    }
    return d;
}

void check_payment_against_order(const payment_fact& p, const order_snapshot& order, decision& d) {
    // Amounts in another currency than the order's do not match whatever their digits say.
    if ((p.amount_total && *p.amount_total != order.amount_total) ||
        (!p.currency.empty() && p.currency != order.currency))
        d.open.push_back(discrepancy_kind::amount_mismatch);
    if (!p.appid.empty() && order.appid && !order.appid->empty() && *order.appid != p.appid)
        d.open.push_back(discrepancy_kind::appid_mismatch);
}

}  // namespace

std::int64_t paid_total(const order_snapshot& order) noexcept {
    return order.payer_total.value_or(order.amount_total);
}

bool is_terminal(trade_state s) noexcept {
    return s != trade_state::notpay && s != trade_state::userpaying;
}

bool is_forward(trade_state from, trade_state to) noexcept {
    if (from == to) return false;
    switch (from) {
        case trade_state::notpay:
            return true;
        case trade_state::userpaying:
            return to != trade_state::notpay;
        case trade_state::success:
            return to == trade_state::refund;
        default:
            return false;
    }
}

bool is_forward(refund_status from, refund_status to) noexcept {
    if (from == to) return false;
    switch (from) {
        case refund_status::processing:
            return true;
        case refund_status::abnormal:
            return to == refund_status::success || to == refund_status::closed;
        default:
            return false;
    }
}

decision decide(const fact& f, const payment_fact& p, const std::optional<order_snapshot>& order) {
    decision d;
    // WeChat Pay says REFUND once any refund succeeded; the ledger says it only once the refunds reach
    // what was paid. Otherwise the order is a paid one with refunds (SUCCESS, refunded_total).
    trade_state observed = p.state;
    if (observed == trade_state::refund) {
        const std::int64_t paid = p.payer_total.value_or(
            p.amount_total.value_or(order ? paid_total(*order) : std::numeric_limits<std::int64_t>::max()));
        if (!order || order->refunded_total < paid) observed = trade_state::success;
    }
    if (!order) {
        // Money for an order nobody registered is still money: keep it, flag it. (Found in a bill, the
        // reconciliation flags it as missing_in_ledger instead.)
        d.result = outcome::applied;
        d.create_order = true;
        d.new_state = observed;
        d.record_payment_details = true;
        if (f.source != fact_source::bill) d.open.push_back(discrepancy_kind::unknown_order);
        return d;
    }

    const trade_state recorded = order->state;
    if (observed == recorded) {
        if (is_paid(observed) && order->transaction_id.empty()) {
            d.result = outcome::applied;
            d.record_payment_details = true;
            check_payment_against_order(p, *order, d);
        }
        return d;
    }

    if (is_forward(recorded, observed)) {
        d.result = outcome::applied;
        d.new_state = observed;
        if (is_paid(observed)) {
            d.record_payment_details = true;
            check_payment_against_order(p, *order, d);
        }
        // A refund reported before its payment: the payment completes the history.
        if (observed == trade_state::success && order->refunded_total > 0) {
            const std::int64_t paid = p.payer_total.value_or(p.amount_total.value_or(order->amount_total));
            if (order->refunded_total >= paid) d.new_state = trade_state::refund;
            d.resolve.push_back(discrepancy_kind::refund_without_payment);
        }
        return d;
    }

    if (observed == trade_state::success) {
        if (recorded == trade_state::refund) {
            // The payment notification of an order already refunded: consistent, older event.
            if (is_notification(f.source) && order->transaction_id.empty()) {
                d.result = outcome::applied;
                d.record_payment_details = true;
                check_payment_against_order(p, *order, d);
                return d;
            }
            if (is_notification(f.source)) return d;
            return contradicts(f.observed_at, order->state_observed_at);
        }
        // WeChat took money for an order recorded as finished otherwise: real money, flag it.
        d.result = outcome::applied;
        d.record_payment_details = true;
        d.open.push_back(recorded == trade_state::closed ? discrepancy_kind::paid_after_close
                                                         : discrepancy_kind::state_conflict);
        check_payment_against_order(p, *order, d);
        return d;
    }

    return contradicts(f.observed_at, order->state_observed_at);
}

decision decide(const fact& f, const refund_fact& r, const std::optional<order_snapshot>& order,
                const std::optional<refund_snapshot>& refund) {
    const bool paid = order && is_paid(order->state);
    if (r.require_paid_order_match) {
        // Nothing authenticates an APIv2 refund notification; only agreement with a paid order does.
        const bool matches = paid && !order->transaction_id.empty() &&
                             order->transaction_id == r.transaction_id && r.amount_total &&
                             *r.amount_total == order->amount_total;
        if (!matches) {
            decision d;
            d.result = outcome::unmatched;
            return d;
        }
    }

    if (refund) {
        if (refund->status == r.status) return decision{};
        if (!is_forward(refund->status, r.status))
            return contradicts(f.observed_at, refund->status_observed_at);
    }

    decision d;
    d.result = outcome::applied;
    d.upsert_refund = true;
    if (!paid) d.open.push_back(discrepancy_kind::refund_without_payment);
    if (r.status == refund_status::abnormal) d.open.push_back(discrepancy_kind::refund_abnormal);
    if (r.status == refund_status::success) {
        d.resolve.push_back(discrepancy_kind::refund_abnormal);
        if (order && order->state == trade_state::success &&
            order->refunded_total + r.amount_refund >= paid_total(*order))
            d.new_state = trade_state::refund;
    }
    return d;
}

}  // namespace wxrecon::domain
