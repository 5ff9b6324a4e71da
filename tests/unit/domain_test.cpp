// The state rules of docs/interfaces.md §9, pair by pair: every recorded
// state against every observed state, stale versus newer observations, refund
// moves and the discrepancies each decision opens.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "domain/schedule.hpp"
#include "domain/transitions.hpp"

namespace wxrecon::domain {
namespace {

constexpr trade_state all_states[] = {trade_state::notpay,  trade_state::userpaying, trade_state::success,
                                      trade_state::refund,  trade_state::closed,     trade_state::revoked,
                                      trade_state::payerror};
constexpr refund_status all_refund_statuses[] = {refund_status::processing, refund_status::success,
                                                 refund_status::closed, refund_status::abnormal};

bool opens(const decision& d, discrepancy_kind k) {
    return std::ranges::find(d.open, k) != d.open.end();
}

fact query_fact(micros observed_at) {
    fact f;
    f.mchid = "1900000109";
    f.source = fact_source::query_v3;
    f.observed_at = observed_at;
    return f;
}

payment_fact observed(trade_state s) {
    payment_fact p;
    p.out_trade_no = "T1";
    p.state = s;
    if (s == trade_state::success || s == trade_state::refund) {
        p.transaction_id = "4200000001";
        p.amount_total = 100;
        p.payer_total = 100;
    }
    return p;
}

order_snapshot recorded(trade_state s, micros changed_at = 1000) {
    order_snapshot o;
    o.state = s;
    o.state_observed_at = changed_at;
    o.amount_total = 100;
    o.appid = "wxd678efh567hg6787";
    if (s == trade_state::success || s == trade_state::refund) o.transaction_id = "4200000001";
    return o;
}

TEST(TransitionTable, ForwardMovesAreExactlyTheDocumentedOnes) {
    for (auto from : all_states) {
        for (auto to : all_states) {
            bool expected = false;
            if (from == trade_state::notpay) expected = to != from;
            if (from == trade_state::userpaying) expected = to != from && to != trade_state::notpay;
            if (from == trade_state::success) expected = to == trade_state::refund;
            EXPECT_EQ(is_forward(from, to), expected) << to_string(from) << " -> " << to_string(to);
        }
    }
}

TEST(TransitionTable, TerminalStates) {
    for (auto s : all_states)
        EXPECT_EQ(is_terminal(s), s != trade_state::notpay && s != trade_state::userpaying) << to_string(s);
}

// Every (recorded, observed) pair, observed after the record: forward moves apply, equal states change
// nothing, SUCCESS on a closed/revoked/failed order is real money flagged, everything else is a regression.
TEST(TransitionTable, EveryPairObservedAfterTheRecord) {
    for (auto rec : all_states) {
        for (auto obs : all_states) {
            SCOPED_TRACE(std::string(to_string(rec)) + " observed " + std::string(to_string(obs)));
            auto record = recorded(rec, 1000);
            // WeChat Pay reports REFUND once any refund succeeded; the ledger agrees once they reach what
            // was paid (partial refunds: PartialRefunds below).
            if (obs == trade_state::refund) record.refunded_total = 100;
            const auto d = decide(query_fact(2000), observed(obs), record);
            if (obs == rec) {
                EXPECT_EQ(d.result, outcome::unchanged);
                EXPECT_FALSE(d.new_state);
            } else if (is_forward(rec, obs)) {
                EXPECT_EQ(d.result, outcome::applied);
                ASSERT_TRUE(d.new_state);
                EXPECT_EQ(*d.new_state, obs);
            } else if (obs == trade_state::success && rec == trade_state::closed) {
                EXPECT_EQ(d.result, outcome::applied);
                EXPECT_FALSE(d.new_state);
                EXPECT_TRUE(opens(d, discrepancy_kind::paid_after_close));
            } else if (obs == trade_state::success &&
                       (rec == trade_state::revoked || rec == trade_state::payerror)) {
                EXPECT_EQ(d.result, outcome::applied);
                EXPECT_FALSE(d.new_state);
                EXPECT_TRUE(opens(d, discrepancy_kind::state_conflict));
            } else {
                EXPECT_EQ(d.result, outcome::regression);
                EXPECT_FALSE(d.new_state);
                EXPECT_TRUE(opens(d, discrepancy_kind::state_regression));
            }
        }
    }
}

TEST(TransitionTable, EveryBackwardPairObservedBeforeTheRecordIsStale) {
    for (auto rec : all_states) {
        for (auto obs : all_states) {
            if (obs == rec || is_forward(rec, obs) || obs == trade_state::success) continue;
            auto record = recorded(rec, 1000);
            if (obs == trade_state::refund) record.refunded_total = 100;  // as in the table above
            const auto d = decide(query_fact(500), observed(obs), record);
            EXPECT_EQ(d.result, outcome::stale) << to_string(rec) << " observed " << to_string(obs);
            EXPECT_TRUE(d.open.empty());
        }
    }
}

TEST(TransitionTable, StaleBoundaryIsTheRecordTime) {
    EXPECT_EQ(
        decide(query_fact(999), observed(trade_state::notpay), recorded(trade_state::success, 1000)).result,
        outcome::stale);
    EXPECT_EQ(
        decide(query_fact(1000), observed(trade_state::notpay), recorded(trade_state::success, 1000)).result,
        outcome::regression);
}

TEST(TransitionTable, UnknownOrderIsCreatedAndFlagged) {
    fact f = query_fact(1);
    f.source = fact_source::notify_v3;
    const auto d = decide(f, observed(trade_state::success), std::nullopt);
    EXPECT_EQ(d.result, outcome::applied);
    EXPECT_TRUE(d.create_order);
    EXPECT_EQ(d.new_state, trade_state::success);
    EXPECT_TRUE(opens(d, discrepancy_kind::unknown_order));
}

TEST(TransitionTable, AmountAndAppidMismatchesAreAppliedAndFlagged) {
    auto p = observed(trade_state::success);
    p.amount_total = 90;
    p.appid = "wxother";
    const auto d = decide(query_fact(2000), p, recorded(trade_state::notpay));
    EXPECT_EQ(d.result, outcome::applied);
    EXPECT_EQ(d.new_state, trade_state::success);
    EXPECT_TRUE(opens(d, discrepancy_kind::amount_mismatch));
    EXPECT_TRUE(opens(d, discrepancy_kind::appid_mismatch));
}

// Issue 16 item 6: the same digits in another currency are not the order's amount.
TEST(TransitionTable, AnotherCurrencyThanTheOrdersIsAnAmountMismatch) {
    auto p = observed(trade_state::success);
    p.currency = "USD";
    const auto flagged = decide(query_fact(2000), p, recorded(trade_state::notpay));
    EXPECT_EQ(flagged.result, outcome::applied);
    EXPECT_TRUE(opens(flagged, discrepancy_kind::amount_mismatch));
    p.currency = "CNY";
    EXPECT_FALSE(
        opens(decide(query_fact(2000), p, recorded(trade_state::notpay)), discrepancy_kind::amount_mismatch));
    p.currency.clear();  // an answer without a currency (APIv2 may omit fee_type): nothing to compare
    EXPECT_FALSE(
        opens(decide(query_fact(2000), p, recorded(trade_state::notpay)), discrepancy_kind::amount_mismatch));
}

TEST(TransitionTable, PaymentNotificationAfterItsRefundIsConsistent) {
    fact f = query_fact(2000);
    f.source = fact_source::notify_v3;
    auto rec = recorded(trade_state::refund);
    rec.transaction_id.clear();
    const auto d = decide(f, observed(trade_state::success), rec);
    EXPECT_EQ(d.result, outcome::applied);
    EXPECT_FALSE(d.new_state);
    EXPECT_TRUE(d.record_payment_details);
    EXPECT_TRUE(d.open.empty());
    // Once the payment details are known, the same notification changes nothing.
    EXPECT_EQ(decide(f, observed(trade_state::success), recorded(trade_state::refund)).result,
              outcome::unchanged);
}

TEST(TransitionTable, PaymentAfterASuccessfulRefundGoesStraightToRefund) {
    auto rec = recorded(trade_state::notpay);
    rec.refunded_total = 100;
    const auto d = decide(query_fact(2000), observed(trade_state::success), rec);
    EXPECT_EQ(d.new_state, trade_state::refund);
    EXPECT_NE(std::ranges::find(d.resolve, discrepancy_kind::refund_without_payment), d.resolve.end());
}

refund_fact refund(refund_status s) {
    refund_fact r;
    r.out_trade_no = "T1";
    r.out_refund_no = "R1";
    r.transaction_id = "4200000001";
    r.status = s;
    r.amount_refund = 100;  // the whole payment; the partial-refund tests say otherwise
    r.amount_total = 100;
    return r;
}

TEST(RefundTable, ForwardMoves) {
    for (auto from : all_refund_statuses) {
        for (auto to : all_refund_statuses) {
            bool expected = false;
            if (from == refund_status::processing) expected = to != from;
            if (from == refund_status::abnormal)
                expected = to == refund_status::success || to == refund_status::closed;
            EXPECT_EQ(is_forward(from, to), expected) << to_string(from) << " -> " << to_string(to);
        }
    }
}

TEST(RefundTable, EveryPairOnAPaidOrder) {
    for (auto rec : all_refund_statuses) {
        for (auto obs : all_refund_statuses) {
            SCOPED_TRACE(std::string(to_string(rec)) + " observed " + std::string(to_string(obs)));
            const auto d = decide(query_fact(2000), refund(obs), recorded(trade_state::success),
                                  refund_snapshot{rec, 1000});
            if (obs == rec) {
                EXPECT_EQ(d.result, outcome::unchanged);
            } else if (is_forward(rec, obs)) {
                EXPECT_EQ(d.result, outcome::applied);
                EXPECT_TRUE(d.upsert_refund);
                EXPECT_EQ(d.new_state == trade_state::refund, obs == refund_status::success);
                EXPECT_EQ(opens(d, discrepancy_kind::refund_abnormal), obs == refund_status::abnormal);
            } else {
                EXPECT_EQ(d.result, outcome::regression);
            }
            const auto early = decide(query_fact(10), refund(obs), recorded(trade_state::success),
                                      refund_snapshot{rec, 1000});
            if (obs != rec && !is_forward(rec, obs)) {
                EXPECT_EQ(early.result, outcome::stale);
            }
        }
    }
}

TEST(RefundTable, FirstSightingOfEachStatus) {
    for (auto obs : all_refund_statuses) {
        const auto d = decide(query_fact(2000), refund(obs), recorded(trade_state::success), std::nullopt);
        EXPECT_EQ(d.result, outcome::applied);
        EXPECT_TRUE(d.upsert_refund);
        EXPECT_EQ(d.new_state == trade_state::refund, obs == refund_status::success) << to_string(obs);
        EXPECT_FALSE(opens(d, discrepancy_kind::refund_without_payment));
    }
}

TEST(RefundTable, ClosedRefundLeavesTheOrderAlone) {
    const auto d = decide(query_fact(2000), refund(refund_status::closed), recorded(trade_state::success),
                          refund_snapshot{refund_status::processing, 1000});
    EXPECT_EQ(d.result, outcome::applied);
    EXPECT_FALSE(d.new_state);
}

// An order is REFUND only once its SUCCESS refunds reach what was paid; until then it stays SUCCESS and
// refunded_total tells how much went back.
TEST(PartialRefunds, APartialRefundKeepsTheOrderPaid) {
    auto partial = refund(refund_status::success);
    partial.amount_refund = 40;
    const auto d = decide(query_fact(2000), partial, recorded(trade_state::success), std::nullopt);
    EXPECT_EQ(d.result, outcome::applied);
    EXPECT_TRUE(d.upsert_refund);
    EXPECT_FALSE(d.new_state);

    // 60 already back, 40 more: the whole 100 is refunded.
    auto rec = recorded(trade_state::success);
    rec.refunded_total = 60;
    EXPECT_EQ(decide(query_fact(2000), partial, rec, std::nullopt).new_state, trade_state::refund);
    // What was paid is the payer's part when recorded (a coupon paid the rest).
    rec.refunded_total = 0;
    rec.payer_total = 40;
    EXPECT_EQ(decide(query_fact(2000), partial, rec, std::nullopt).new_state, trade_state::refund);
}

TEST(PartialRefunds, WeChatsRefundStateOnAPartlyRefundedOrderChangesNothing) {
    auto rec = recorded(trade_state::success);
    rec.refunded_total = 40;
    const auto d = decide(query_fact(2000), observed(trade_state::refund), rec);
    EXPECT_EQ(d.result, outcome::unchanged);
    EXPECT_FALSE(d.new_state);
    EXPECT_TRUE(d.open.empty()) << "not a regression either";
    rec.refunded_total = 100;
    EXPECT_EQ(decide(query_fact(2000), observed(trade_state::refund), rec).new_state, trade_state::refund);
}

TEST(PartialRefunds, PaymentAfterAPartialRefundIsPaid) {
    auto rec = recorded(trade_state::notpay);
    rec.refunded_total = 40;
    const auto d = decide(query_fact(2000), observed(trade_state::success), rec);
    EXPECT_EQ(d.new_state, trade_state::success);
    EXPECT_NE(std::ranges::find(d.resolve, discrepancy_kind::refund_without_payment), d.resolve.end());
    // A query reporting REFUND for an order the ledger did not know paid: paid, refunds to follow.
    const auto refunded =
        decide(query_fact(2000), observed(trade_state::refund), recorded(trade_state::notpay));
    EXPECT_EQ(refunded.new_state, trade_state::success);
    EXPECT_TRUE(refunded.record_payment_details);
    const auto unknown = decide(query_fact(2000), observed(trade_state::refund), std::nullopt);
    EXPECT_EQ(unknown.new_state, trade_state::success);
}

TEST(RefundTable, RefundWithoutPaymentIsStoredAndFlagged) {
    for (auto rec : all_states) {
        if (rec == trade_state::success || rec == trade_state::refund) continue;
        const auto d = decide(query_fact(2000), refund(refund_status::success), recorded(rec), std::nullopt);
        EXPECT_EQ(d.result, outcome::applied) << to_string(rec);
        EXPECT_TRUE(d.upsert_refund);
        EXPECT_FALSE(d.new_state);
        EXPECT_TRUE(opens(d, discrepancy_kind::refund_without_payment));
    }
    const auto missing = decide(query_fact(2000), refund(refund_status::success), std::nullopt, std::nullopt);
    EXPECT_TRUE(opens(missing, discrepancy_kind::refund_without_payment));
}

TEST(RefundTable, UnauthenticatedRefundNeedsAMatchingPaidOrder) {
    auto r = refund(refund_status::success);
    r.require_paid_order_match = true;
    EXPECT_EQ(decide(query_fact(2000), r, recorded(trade_state::success), std::nullopt).result,
              outcome::applied);
    EXPECT_EQ(decide(query_fact(2000), r, recorded(trade_state::notpay), std::nullopt).result,
              outcome::unmatched);
    EXPECT_EQ(decide(query_fact(2000), r, std::nullopt, std::nullopt).result, outcome::unmatched);
    auto wrong_total = r;
    wrong_total.amount_total = 99;
    EXPECT_EQ(decide(query_fact(2000), wrong_total, recorded(trade_state::success), std::nullopt).result,
              outcome::unmatched);
    auto wrong_txn = r;
    wrong_txn.transaction_id = "4200000999";
    EXPECT_EQ(decide(query_fact(2000), wrong_txn, recorded(trade_state::success), std::nullopt).result,
              outcome::unmatched);
}

}  // namespace
}  // namespace wxrecon::domain

namespace wxrecon::domain {
namespace {

constexpr micros s = 1'000'000;

TEST(PollSchedule, DelaysThenIntervalUntilExpiry) {
    const poll_schedule sch{{5 * s, 30 * s, 60 * s}, 600 * s, 60 * s};
    const micros created = 1000 * s, expire = created + 1800 * s;
    EXPECT_EQ(query_due(sch, created, expire, 0), created + 5 * s);
    EXPECT_EQ(query_due(sch, created, expire, 2), created + 60 * s);
    EXPECT_EQ(query_due(sch, created, expire, 3), created + 660 * s);  // last delay + 1 interval
    EXPECT_EQ(query_due(sch, created, expire, 4), created + 1260 * s);
    EXPECT_EQ(query_due(sch, created, expire, 5), std::nullopt);  // 1860 s is past expiry
    EXPECT_EQ(close_due(sch, created, expire, false), expire + 60 * s);
}

TEST(PollSchedule, MissedSlotsAreSkippedNotMadeUp) {
    const poll_schedule sch{{5 * s, 30 * s, 60 * s}, 600 * s, 60 * s};
    const micros created = 1000 * s, expire = created + 3000 * s;
    // On time: the next numbered slot.
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 6 * s), created + 30 * s);
    // After a downtime: the first slot far enough after now, whatever number the order was at.
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 40 * s), created + 60 * s);
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 45 * s),
              created + 660 * s);  // 60 s is too close
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 61 * s), created + 660 * s);
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 1300 * s), created + 1860 * s);
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 1860 * s),
              created + 2460 * s);  // due at now: next
    EXPECT_EQ(next_query_due(sch, created, expire, 1, created + 2500 * s),
              std::nullopt);  // 3060 s is past expiry
    // A later number than now implies is kept.
    EXPECT_EQ(next_query_due(sch, created, expire, 4, created + 6 * s), created + 1260 * s);
}

TEST(PollSchedule, EntriesAtOrAfterExpirySkippedAndApiV2ClosesNoEarlierThanFiveMinutes) {
    const poll_schedule sch{{5 * s, 30 * s, 60 * s}, 600 * s, 10 * s};
    const micros created = 0, expire = 30 * s;
    EXPECT_EQ(query_due(sch, created, expire, 0), 5 * s);
    EXPECT_EQ(query_due(sch, created, expire, 1), std::nullopt);  // exactly at expiry: skipped
    EXPECT_EQ(close_due(sch, created, expire, false), 40 * s);
    EXPECT_EQ(close_due(sch, created, expire, true), 300 * s);
    const poll_schedule no_interval{{5 * s}, 0, 0};
    EXPECT_EQ(query_due(no_interval, created, 3600 * s, 1), std::nullopt);
}

TEST(OrderNumber, WeChatPaysRuleSixToThirtyTwoOfItsAlphabet) {
    EXPECT_TRUE(valid_out_trade_no("1217752501201407033233368018"));
    EXPECT_TRUE(valid_out_trade_no("a_-|*9"));
    EXPECT_TRUE(valid_out_trade_no(std::string(32, 'Z')));
    EXPECT_FALSE(valid_out_trade_no("A1234"));
    EXPECT_FALSE(valid_out_trade_no(std::string(33, 'Z')));
    EXPECT_FALSE(valid_out_trade_no(""));
    for (const std::string& bad :
         std::vector<std::string>{std::string("ORDER/1"), std::string("ORDER?1"), std::string("ORDER#1"),
                                  std::string("ORDER 1"), std::string("ORDER\r\n1"), std::string("ORDER.1"),
                                  std::string("ORDER%21"), std::string("ORDER\"1"),
                                  std::string("ORDER\0"
                                              "1",
                                              7),
                                  std::string("订单号000001")})
        EXPECT_FALSE(valid_out_trade_no(bad)) << bad;
}

}  // namespace
}  // namespace wxrecon::domain
