// A merchant's day against WeChat Pay's bills, on a real PostgreSQL: files are stored once per content
// (rows by COPY, the file itself in parts), a malformed file keeps no rows, payments the ledger missed go
// through the fact path (source bill), every difference is found once with its kind, nothing else is
// flagged, a payment a second before midnight waits for the next day's bill, and a re-run changes nothing.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "crypto/sha1_stream.hpp"
#include "store/bill_store.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "store/statement_store.hpp"
#include "test_env.hpp"
#include "workflow/bill_reconciler.hpp"

namespace wxrecon::testing {
namespace {

namespace bill = protocol::bill;
using kind_and_order = std::pair<std::string, std::string>;

constexpr const char* day = "2026-11-30";
constexpr const char* next_day = "2026-12-01";

std::string yuan(std::int64_t fen) {
    const char* sign = fen < 0 ? "-" : "";
    fen = fen < 0 ? -fen : fen;
    const std::string cents = std::to_string(100 + fen % 100).substr(1);
    return sign + std::to_string(fen / 100) + "." + cents;
}
std::string fee_text(std::int64_t units) {  // 1/100000 yuan
    const char* sign = units < 0 ? "-" : "";
    units = units < 0 ? -units : units;
    return sign + std::to_string(units / 100000) + "." + std::to_string(100000 + units % 100000).substr(1);
}

// One line of an ALL trade bill: a payment, or a refund of one.
struct trade_line {
    std::string time;  // Beijing
    std::string transaction_id, out_trade_no;
    std::int64_t order_fen = 0;
    std::int64_t fee_units = 0;
    std::string refund_id, out_refund_no;  // set: a refund line of refund_fen
    std::int64_t refund_fen = 0;
};

trade_line pay(std::string time, std::string transaction_id, std::string out_trade_no, std::int64_t fen,
               std::int64_t fee_units) {
    trade_line l;
    l.time = std::move(time);
    l.transaction_id = std::move(transaction_id);
    l.out_trade_no = std::move(out_trade_no);
    l.order_fen = fen;
    l.fee_units = fee_units;
    return l;
}
trade_line refund_line(std::string time, std::string transaction_id, std::string out_trade_no,
                       std::string refund_id, std::string out_refund_no, std::int64_t fen) {
    trade_line l = pay(std::move(time), std::move(transaction_id), std::move(out_trade_no), 0, 0);
    l.refund_id = std::move(refund_id);
    l.out_refund_no = std::move(out_refund_no);
    l.refund_fen = fen;
    return l;
}

std::string trade_bill(const std::vector<trade_line>& lines) {
    std::string out =
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
        "付款银行,"
        "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,"
        "退款状态,"
        "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n";
    std::int64_t settled = 0, refunded = 0, fees = 0, ordered = 0;
    for (const auto& l : lines) {
        const bool refund = !l.refund_id.empty();
        const std::int64_t order = refund ? 0 : l.order_fen;
        out += "`" + l.time + ",`" + test_appid + ",`" + test_mchid + ",`0,`,`" + l.transaction_id + ",`" +
               l.out_trade_no + ",`oUser,`JSAPI,`" + (refund ? "REFUND" : "SUCCESS") + ",`OTHERS,`CNY,`" +
               yuan(order) + ",`0.00,`" + (refund ? l.refund_id : "0") + ",`" +
               (refund ? l.out_refund_no : "0") + ",`" + yuan(l.refund_fen) + ",`0.00,`" +
               (refund ? "ORIGINAL" : "") + ",`" + (refund ? "SUCCESS" : "") + ",`咖啡,`,`" +
               fee_text(l.fee_units) + ",`0.60%,`" + yuan(order) + ",`" + yuan(l.refund_fen) + ",`\n";
        settled += order;
        refunded += l.refund_fen;
        fees += l.fee_units;
        ordered += order;
    }
    out += "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n";
    out += "`" + std::to_string(lines.size()) + ",`" + yuan(settled) + ",`" + yuan(refunded) + ",`0.00,`" +
           fee_text(fees) + ",`" + yuan(ordered) + ",`" + yuan(refunded) + "\n";
    return out;
}

struct fund_line {
    std::string business_order_id;
    std::string type;  // 交易, 退款, 扣除交易手续费, 提现
    bool income = true;
    std::int64_t fen = 0;
};

std::string fund_bill(const std::vector<fund_line>& lines) {
    std::string out =
        "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),"
        "资金变更提交申请人,备注,业务凭证号\n";
    std::int64_t balance = 100000, income = 0, expense = 0, incomes = 0;
    int flow = 0;
    for (const auto& l : lines) {
        balance += l.income ? l.fen : -l.fen;
        (l.income ? income : expense) += l.fen;
        incomes += l.income ? 1 : 0;
        out += "`2026-11-30 12:00:00,`" + l.business_order_id + ",`FLOW" + std::to_string(++flow) + ",`" +
               l.type + ",`" + l.type + ",`" + (l.income ? "收入" : "支出") + ",`" + yuan(l.fen) + ",`" +
               yuan(balance) + ",`system,`,`\n";
    }
    const std::int64_t expenses = static_cast<std::int64_t>(lines.size()) - incomes;
    out += "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n";
    out += "`" + std::to_string(lines.size()) + ".0,`" + std::to_string(incomes) + ".0,`" + yuan(income) +
           ",`" + std::to_string(expenses) + ".0,`" + yuan(expense) + "\n";
    return out;
}

class BillReconcile : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
        dir_ = std::filesystem::temp_directory_path() /
               ("wxrecon-bills-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_);
        pool_ = std::make_unique<store::db_pool>(db_.url(), 2, 64, store::prepare_ledger_connection);
        ledger_ = std::make_unique<store::ledger>(*pool_);
    }
    void TearDown() override {
        ledger_.reset();
        pool_->stop();
        std::filesystem::remove_all(dir_);
    }

    template <class T>
    T run(boost::asio::awaitable<T> work) {
        boost::asio::io_context io;
        auto done = boost::asio::co_spawn(io, std::move(work), boost::asio::use_future);
        io.run();
        return done.get();
    }

    std::string write_file(const std::string& name, const std::string& text) {
        const auto path = dir_ / name;
        std::ofstream(path, std::ios::binary) << text;
        return path.string();
    }

    store::bill_file trade_file(const std::string& path, const std::string& date = day) {
        return {test_mchid, date, bill::bill_kind::trade, "ALL", path, std::nullopt};
    }
    store::bill_file fund_file(const std::string& path, const std::string& date = day) {
        return {test_mchid, date, bill::bill_kind::fundflow, "BASIC", path, std::nullopt};
    }

    workflow::bill_day_result reconcile(std::vector<store::bill_file> files, const std::string& date = day,
                                        bool no_trade_bill = false) {
        workflow::bill_day_request r;
        r.mchid = test_mchid;
        r.bill_date = date;
        r.files = std::move(files);
        r.no_trade_bill = no_trade_bill;
        return run(workflow::reconcile_bill_day(*pool_, *ledger_, std::move(r)));
    }

    // A paid order in the ledger, as a notification would have left it.
    void paid_order(const std::string& out_trade_no, const std::string& transaction_id, std::int64_t fen,
                    const std::string& success_time) {
        db_.exec(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state, state_source, "
            "transaction_id, payer_total, success_time) VALUES ('" +
            std::string(test_mchid) + "', '" + out_trade_no + "', " + std::to_string(fen) +
            ", 'SUCCESS', 'notify', '" + transaction_id + "', " + std::to_string(fen) + ", '" + success_time +
            "')");
    }
    void success_refund(const std::string& out_trade_no, const std::string& out_refund_no,
                        const std::string& refund_id, std::int64_t fen) {
        db_.exec(
            "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, refund_id, amount_refund, "
            "status, "
            "success_time) VALUES ('" +
            std::string(test_mchid) + "', '" + out_refund_no + "', '" + out_trade_no + "', '" + refund_id +
            "', " + std::to_string(fen) + ", 'SUCCESS', '2026-11-30 16:00+08')");
    }

    std::set<kind_and_order> open_discrepancies() const {
        pqxx::connection conn(db_.url());
        pqxx::work tx(conn);
        std::set<kind_and_order> out;
        for (const auto& row :
             tx.exec("SELECT kind, out_trade_no FROM wxrecon.discrepancies WHERE resolved_at IS NULL"))
            out.insert({row[0].as<std::string>(), row[1].as<std::string>()});
        return out;
    }

    scratch_database db_;
    std::filesystem::path dir_;
    std::unique_ptr<store::db_pool> pool_;
    std::unique_ptr<store::ledger> ledger_;
};

// ------------------------------------------------------------------ storing files

TEST_F(BillReconcile, FileIsStoredOnceAndTheSameFileAgainIsNothingNew) {
    const std::string text = trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)});
    const auto path = write_file("trade.csv", text);
    const auto first = run(store::store_bill_file(*pool_, trade_file(path)));
    EXPECT_EQ(first.outcome, store::bill_store_outcome::stored);
    EXPECT_EQ(first.rows, 1);
    EXPECT_EQ(first.hash_value.size(), 40u);
    const auto again = run(store::store_bill_file(*pool_, trade_file(path)));
    EXPECT_EQ(again.outcome, store::bill_store_outcome::same_file);
    EXPECT_EQ(again.bill_id, first.bill_id);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bills"), 1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_trade_rows"), 1);
    // The file itself is kept byte for byte.
    EXPECT_EQ(db_.scalar("SELECT encode(wxrecon.bill_file(" + std::to_string(first.bill_id) + "), 'escape')"),
              db_.scalar("SELECT encode(convert_to($$" + text + "$$, 'UTF8'), 'escape')"));
    EXPECT_EQ(db_.scalar("SELECT fee::text || ' ' || order_amount_fen || ' ' || trade_time AT TIME ZONE "
                         "'Asia/Shanghai' FROM wxrecon.bill_trade_rows"),
              "0.00060 100 2026-11-30 10:00:00");

    // WeChat Pay regenerated the day: kept beside the first.
    const auto regenerated =
        write_file("trade2.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60),
                                             pay("2026-11-30 11:00:00", "T2", "ORDER-A2", 200, 120)}));
    EXPECT_EQ(run(store::store_bill_file(*pool_, trade_file(regenerated))).outcome,
              store::bill_store_outcome::stored);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bills"), 2);
}

TEST_F(BillReconcile, FreeTextReachesItsColumnByteForByte) {
    // COPY's escapes: a backslash, a tab and the letters COPY would read as an escape after one.
    const std::string goods = "咖啡\\N 大杯\t加冰\\t\\\\";
    std::string text = trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)});
    text.replace(text.find("`咖啡,"), std::string("`咖啡,").size(), "`" + goods + ",");
    const auto stored = run(store::store_bill_file(*pool_, trade_file(write_file("goods.csv", text))));
    ASSERT_EQ(stored.outcome, store::bill_store_outcome::stored) << stored.error;
    EXPECT_EQ(db_.scalar("SELECT description FROM wxrecon.bill_trade_rows"), goods);
}

TEST_F(BillReconcile, MalformedFileKeepsItsReasonAndNoRows) {
    std::string text = trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60),
                                   pay("2026-11-30 11:00:00", "T2", "ORDER-A2", 200, 120)});
    text.replace(text.find("`3.00,`0.00,`0.00,`0.00180,`3.00"), 5, "`3.01");  // summary off by one fen
    const auto stored = run(store::store_bill_file(*pool_, trade_file(write_file("bad.csv", text))));
    EXPECT_EQ(stored.outcome, store::bill_store_outcome::malformed);
    EXPECT_NE(stored.error.find("应结订单总金额"), std::string::npos) << stored.error;
    EXPECT_EQ(db_.scalar("SELECT status FROM wxrecon.bills"), "malformed");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_trade_rows"), 0);
    EXPECT_GT(db_.count("SELECT count(*) FROM wxrecon.bill_files"), 0) << "the evidence is kept";
    // A malformed file is never matched: the day stays pending.
    EXPECT_EQ(reconcile({}).day.status, "pending");
}

TEST_F(BillReconcile, ContentThatIsNotWhatWeChatPaySaidIsNotStored) {
    auto file =
        trade_file(write_file("t.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)})));
    file.hash_value = std::string(40, '0');
    const auto stored = run(store::store_bill_file(*pool_, file));
    EXPECT_EQ(stored.outcome, store::bill_store_outcome::hash_mismatch);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bills"), 0);
    file.hash_value = stored.hash_value;  // upper or lower case, as long as it is the content's
    for (auto& c : *file.hash_value) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(run(store::store_bill_file(*pool_, file)).outcome, store::bill_store_outcome::stored);
}

TEST_F(BillReconcile, WithWeChatPaysHashTheContentIsCheckedInTheReadThatParsesIt) {
    const auto sha1_of = [](const std::string& bytes) {
        crypto::sha1_stream sha1;
        sha1.update(bytes);
        return sha1.hex();
    };
    const std::string text = trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)});
    const std::string malformed = text + "`text after the summary\n";

    // Malformed and not what WeChat Pay said: the mismatch wins (the whole file is hashed although the parse
    // stopped early) and nothing is stored.
    auto bad = trade_file(write_file("bad.csv", malformed));
    bad.hash_value = sha1_of(text);
    EXPECT_EQ(run(store::store_bill_file(*pool_, bad)).outcome, store::bill_store_outcome::hash_mismatch);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bills"), 0);
    // Malformed but exactly what WeChat Pay sent: kept, with its size.
    bad.hash_value = sha1_of(malformed);
    EXPECT_EQ(run(store::store_bill_file(*pool_, bad)).outcome, store::bill_store_outcome::malformed);
    EXPECT_EQ(
        db_.scalar("SELECT file_bytes || ' ' || file_gzip FROM wxrecon.bills WHERE status = 'malformed'"),
        std::to_string(malformed.size()) + " false");

    auto good = trade_file(write_file("good.csv", text));
    good.hash_value = sha1_of(text);
    const auto stored = run(store::store_bill_file(*pool_, good));
    EXPECT_EQ(stored.outcome, store::bill_store_outcome::stored);
    EXPECT_EQ(stored.hash_value, *good.hash_value);
    EXPECT_EQ(db_.scalar("SELECT file_bytes || ' ' || status FROM wxrecon.bills WHERE id = " +
                         std::to_string(stored.bill_id)),
              std::to_string(text.size()) + " parsed");
    // The same hash again with a damaged copy: not called the same file (it is checked, not taken on trust).
    std::string damaged = text;
    damaged[damaged.find("ORDER-A1")] = 'X';
    auto copy = trade_file(write_file("damaged.csv", damaged));
    copy.hash_value = good.hash_value;
    EXPECT_EQ(run(store::store_bill_file(*pool_, copy)).outcome, store::bill_store_outcome::hash_mismatch);
    EXPECT_EQ(run(store::store_bill_file(*pool_, good)).outcome, store::bill_store_outcome::same_file);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_trade_rows"), 1);
}

// ------------------------------------------------------------------ matching

TEST_F(BillReconcile, EveryDifferenceIsFoundOnceAndTheRerunChangesNothing) {
    paid_order("ORDER-A1", "T1", 100, "2026-11-30 10:00+08");  // agrees with the bill
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('" +
             std::string(test_mchid) + "', 'ORDER-A2', 200)");  // notification and queries lost: NOTPAY here
    paid_order("ORDER-A4", "T4", 400, "2026-11-30 12:00+08");   // the bill says 450
    paid_order("ORDER-A5", "T5", 500, "2026-11-30 15:00+08");   // not in the bill
    success_refund("ORDER-A1", "R1", "RID1", 40);               // in the bill
    success_refund("ORDER-A4", "R3", "RID3", 10);               // not in the bill
    const auto trade =
        write_file("trade.csv", trade_bill({
                                    pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60),
                                    pay("2026-11-30 11:00:00", "T2", "ORDER-A2", 200, 120),
                                    pay("2026-11-30 11:30:00", "T3", "HAND-1", 300, 180),  // hand payment
                                    pay("2026-11-30 12:00:00", "T4", "ORDER-A4", 450, 270),
                                    refund_line("2026-11-30 16:00:00", "T1", "ORDER-A1", "RID1", "R1", 40),
                                    refund_line("2026-11-30 17:00:00", "T1", "ORDER-A1", "RID2", "R2", 20),
                                }));
    // Fees 0.00630 in the trade bill; the fund flow debits them per payment, each rounded to the fen.
    const auto fund = write_file("fund.csv", fund_bill({{"T1", "交易", true, 100},
                                                        {"T2", "交易", true, 200},
                                                        {"T3", "交易", true, 300},
                                                        {"T4", "交易", true, 450},
                                                        {"T1", "扣除交易手续费", false, 0},
                                                        {"T2", "扣除交易手续费", false, 0},
                                                        {"T3", "扣除交易手续费", false, 0},
                                                        {"T4", "扣除交易手续费", false, 0},
                                                        {"RID1", "退款", false, 40},
                                                        {"RID2", "退款", false, 20},
                                                        {"", "提现", false, 500}}));
    const auto first = reconcile({trade_file(trade), fund_file(fund)});
    EXPECT_EQ(first.payments_applied, 2u) << "A2 and the hand payment";
    const std::set<kind_and_order> expected = {
        {"missing_in_ledger", "ORDER-A2"},        {"missing_in_ledger", "HAND-1"},
        {"bill_amount_mismatch", "ORDER-A4"},     {"missing_in_bill", "ORDER-A5"},
        {"refund_missing_in_ledger", "ORDER-A1"}, {"refund_missing_in_bill", "ORDER-A4"},
        {"fund_flow_unmatched", "FLOW11"},
    };
    EXPECT_EQ(open_discrepancies(), expected);
    EXPECT_EQ(first.day.status, "differences");
    EXPECT_EQ(first.day.differences, 7);
    EXPECT_EQ(first.day.bill_payments, 4);
    EXPECT_EQ(first.day.bill_paid_fen, 1050);
    EXPECT_EQ(first.day.bill_refunds, 2);
    EXPECT_EQ(first.day.trade_fee_total.value_or(""), "0.00630");
    EXPECT_EQ(first.day.fund_fee_total.value_or(""), "0.00");

    // The ledger ends right: A2 paid by the bill's evidence, the hand payment created from it.
    EXPECT_EQ(
        db_.scalar("SELECT state || ' ' || state_source || ' ' || transaction_id FROM wxrecon.orders WHERE "
                   "out_trade_no = 'ORDER-A2'"),
        "SUCCESS bill T2");
    EXPECT_EQ(db_.scalar("SELECT origin || ' ' || state || ' ' || amount_total FROM wxrecon.orders WHERE "
                         "out_trade_no = 'HAND-1'"),
              "bill SUCCESS 300");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'bill'"), 2);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'unknown_order'"), 0)
        << "a hand payment is missing_in_ledger, not also unknown_order";

    // The same day again: nothing new, nothing resolved.
    const auto ids = db_.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM wxrecon.discrepancies");
    const auto second = reconcile({trade_file(trade), fund_file(fund)});
    EXPECT_EQ(second.payments_applied, 0u);
    EXPECT_EQ(second.files[0].outcome, store::bill_store_outcome::same_file);
    EXPECT_EQ(db_.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM wxrecon.discrepancies"), ids);
    EXPECT_EQ(open_discrepancies(), expected);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 2);
    EXPECT_EQ(second.day.differences, 7);
}

TEST_F(BillReconcile, DifferencesThatNoLongerHoldAreResolvedByTheDaemon) {
    paid_order("ORDER-A1", "T1", 100, "2026-11-30 10:00+08");
    paid_order("ORDER-A5", "T5", 500, "2026-11-30 15:00+08");
    const auto first = reconcile({trade_file(
        write_file("t1.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)})))});
    EXPECT_EQ(open_discrepancies(), (std::set<kind_and_order>{{"missing_in_bill", "ORDER-A5"}}));
    // WeChat Pay regenerates the day with A5 in it.
    const auto second = reconcile({trade_file(
        write_file("t2.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60),
                                         pay("2026-11-30 15:00:00", "T5", "ORDER-A5", 500, 300)})))});
    EXPECT_TRUE(open_discrepancies().empty());
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE resolved_at IS NOT NULL"), 1);
    // reconcile_bill_day sets resolved_at; the workflow columns follow (migration 0009).
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || resolved_by || ' ' || resolution FROM wxrecon.discrepancies"
                         " WHERE resolved_at IS NOT NULL"),
              "resolved wxrecond no longer found when the day was reconciled against its bills");
    EXPECT_EQ(
        db_.scalar(
            "SELECT string_agg(by || ' ' || to_status, ', ' ORDER BY h.id)"
            " FROM wxrecon.discrepancy_history h JOIN wxrecon.discrepancies d ON d.id = h.discrepancy_id"
            " WHERE d.resolved_at IS NOT NULL"),
        "wxrecond open, wxrecond resolved");
    EXPECT_EQ(second.day.status, "balanced");
    EXPECT_EQ(second.day.ledger_payments, 2);
    EXPECT_EQ(second.day.bill_payments, 2);
}

TEST_F(BillReconcile, PaymentJustBeforeMidnightWaitsForTheNextDaysBill) {
    paid_order("ORDER-LATE", "TL", 700, "2026-11-30 23:59:59.5+08");
    const auto d = reconcile({trade_file(write_file("d.csv", trade_bill({})))});
    EXPECT_TRUE(open_discrepancies().empty()) << "the next day's bill may hold it";
    EXPECT_EQ(d.day.status, "balanced");
    // WeChat Pay billed it on the next day: found there, nothing to flag on either day.
    const auto next = reconcile(
        {trade_file(
            write_file("n.csv", trade_bill({pay("2026-12-01 00:00:00", "TL", "ORDER-LATE", 700, 420)})),
            next_day)},
        next_day);
    EXPECT_TRUE(open_discrepancies().empty());
    EXPECT_EQ(next.day.status, "balanced");
}

TEST_F(BillReconcile, PaymentJustBeforeMidnightInNeitherBillIsMissingFromItsOwnDay) {
    paid_order("ORDER-LATE", "TL", 700, "2026-11-30 23:59:59.5+08");
    reconcile({trade_file(write_file("d.csv", trade_bill({})))});
    const auto next = reconcile({trade_file(write_file("n.csv", trade_bill({})), next_day)}, next_day);
    EXPECT_EQ(open_discrepancies(), (std::set<kind_and_order>{{"missing_in_bill", "ORDER-LATE"}}));
    EXPECT_EQ(db_.scalar("SELECT bill_date FROM wxrecon.discrepancies"), day);
    EXPECT_EQ(next.day.status, "balanced");
    EXPECT_EQ(
        db_.scalar("SELECT status || ' ' || differences FROM wxrecon.reconciliations WHERE bill_date = '" +
                   std::string(day) + "'"),
        "differences 1");
}

TEST_F(BillReconcile, FeesDisagreeingBetweenTheBillsAreAFeeMismatch) {
    paid_order("ORDER-A1", "T1", 10000, "2026-11-30 10:00+08");
    const auto trade =
        write_file("t.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 10000, 60000)}));
    const auto fund =
        write_file("f.csv", fund_bill({{"T1", "交易", true, 10000}, {"T1", "扣除交易手续费", false, 61}}));
    const auto r = reconcile({trade_file(trade), fund_file(fund)});
    EXPECT_EQ(open_discrepancies(), (std::set<kind_and_order>{{"fee_mismatch", day}}));
    EXPECT_EQ(r.day.trade_fee_total.value_or(""), "0.60000");
    EXPECT_EQ(r.day.fund_fee_total.value_or(""), "0.61");
}

TEST_F(BillReconcile, DayWithoutABillIsNoBillUnlessTheLedgerHasPayments) {
    EXPECT_EQ(reconcile({}, day, true).day.status, "no_bill");
    paid_order("ORDER-A1", "T1", 100, "2026-11-30 10:00+08");
    const auto r = reconcile({}, day, true);
    EXPECT_EQ(r.day.status, "differences");
    EXPECT_EQ(open_discrepancies(), (std::set<kind_and_order>{{"missing_in_bill", "ORDER-A1"}}));
}

TEST_F(BillReconcile, OldBillsArePurgedButTheDaysResultAndDifferencesStay) {
    const auto old_day =
        write_file("old.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)}));
    const auto new_day =
        write_file("new.csv", trade_bill({pay("2026-12-01 10:00:00", "T2", "ORDER-A2", 200, 120)}));
    reconcile({trade_file(old_day)});
    reconcile({trade_file(new_day, next_day)}, next_day);
    const auto open_before = open_discrepancies();
    ASSERT_EQ(open_before.size(), 2u) << "both payments are missing in the ledger";

    EXPECT_EQ(run(store::purge_bills_before(*pool_, next_day)), 1);
    EXPECT_EQ(db_.scalar("SELECT string_agg(bill_date::text, ',') FROM wxrecon.bills"), next_day);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_trade_rows"), 1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_files f JOIN wxrecon.bills b ON b.id = f.bill_id"),
              db_.count("SELECT count(*) FROM wxrecon.bill_files"))
        << "no part of a purged file is left";
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || (trade_bill_id IS NULL) FROM wxrecon.reconciliations "
                         "WHERE bill_date = '" +
                         std::string(day) + "'"),
              "differences true");
    EXPECT_EQ(open_discrepancies(), open_before);
    EXPECT_EQ(run(store::purge_bills_before(*pool_, next_day)), 0) << "nothing left to purge";
}

// The rows have no foreign key to their bill (it cost a lookup per row; migration 0011), and still stay
// with it and go with it.
TEST_F(BillReconcile, RowsStayWithTheirBillAndGoWithIt) {
    const auto stored = run(store::store_bill_file(
        *pool_, trade_file(write_file("t.csv",
                                      trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)})))));
    ASSERT_EQ(stored.outcome, store::bill_store_outcome::stored);
    const std::string id = std::to_string(stored.bill_id);
    try {
        db_.exec("UPDATE wxrecon.bill_trade_rows SET bill_id = bill_id + 1");
        ADD_FAILURE() << "a row moved to another bill";
    } catch (const pqxx::sql_error& e) {
        EXPECT_EQ(std::string(e.sqlstate()), "23503") << e.what();
    }
    db_.exec(
        "INSERT INTO wxrecon.bill_trade_rows SELECT (jsonb_populate_record(r, '{\"line\": 100}')).* FROM "
        "wxrecon.bill_trade_rows r");
    db_.exec("DELETE FROM wxrecon.reconciliations");
    db_.exec("DELETE FROM wxrecon.bills WHERE id = " + id);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_trade_rows"), 0)
        << "the rows went with their bill";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.bill_files"), 0);
}

// A backfill: several days matched in one statement (one transaction) starts each day clean.
TEST_F(BillReconcile, SeveralDaysInOneTransaction) {
    reconcile({trade_file(
        write_file("d1.csv", trade_bill({pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60)})))});
    reconcile({trade_file(
                  write_file("d2.csv", trade_bill({pay("2026-12-01 10:00:00", "T2", "ORDER-A2", 200, 120)})),
                  next_day)},
              next_day);
    EXPECT_EQ(db_.scalar("SELECT string_agg(r.status, ',' ORDER BY r.bill_date) FROM generate_series(DATE '" +
                         std::string(day) + "', DATE '" + next_day +
                         "', interval '1 day') AS g(d), LATERAL wxrecon.reconcile_bill_day('" + test_mchid +
                         "', g.d::date, interval '10 minutes') AS r"),
              "differences,differences");
}

// `wxrecond report`: the day per order, the ledger beside the bill, with what is still open.
TEST_F(BillReconcile, DayStatementShowsEachOrderBesideItsBillLine) {
    paid_order("ORDER-A1", "T1", 100, "2026-11-30 10:00+08");
    paid_order("ORDER-A4", "T4", 400, "2026-11-30 12:00+08");
    paid_order("ORDER-A5", "T5", 500, "2026-11-30 15:00+08");
    paid_order("OTHER-DAY", "T9", 900, "2026-12-01 09:00+08");
    success_refund("ORDER-A1", "R1", "RID1", 40);
    reconcile({trade_file(
        write_file("trade.csv", trade_bill({
                                    pay("2026-11-30 10:00:00", "T1", "ORDER-A1", 100, 60),
                                    pay("2026-11-30 11:30:00", "T3", "HAND-1", 300, 180),
                                    pay("2026-11-30 12:00:00", "T4", "ORDER-A4", 450, 270),
                                    refund_line("2026-11-30 16:00:00", "T1", "ORDER-A1", "RID1", "R1", 40),
                                })))});
    std::vector<store::statement_row> rows;
    const auto count = run(store::day_statement(
        *pool_, test_mchid, day, [&rows](const store::statement_row& r) { rows.push_back(r); }));
    ASSERT_EQ(count, 4);
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0].out_trade_no, "ORDER-A1");
    EXPECT_EQ(rows[0].settled_by, "notify");
    EXPECT_EQ(rows[0].success_time, "2026-11-30 10:00:00");
    EXPECT_EQ(rows[0].amount_total_fen, 100);
    EXPECT_EQ(rows[0].bill_order_fen, 100);
    EXPECT_EQ(rows[0].bill_fee.value_or(""), "0.00060");
    EXPECT_EQ(rows[0].refunded_fen, 40);
    EXPECT_EQ(rows[0].bill_refund_fen, 40);
    EXPECT_EQ(rows[0].open_discrepancies, "");

    EXPECT_EQ(rows[1].out_trade_no, "HAND-1");
    EXPECT_EQ(rows[1].settled_by, "bill");
    EXPECT_EQ(rows[1].state, "SUCCESS");
    EXPECT_EQ(rows[1].transaction_id, "T3");
    EXPECT_EQ(rows[1].open_discrepancies, "missing_in_ledger");

    EXPECT_EQ(rows[2].out_trade_no, "ORDER-A4");
    EXPECT_EQ(rows[2].amount_total_fen, 400);
    EXPECT_EQ(rows[2].bill_order_fen, 450);
    EXPECT_EQ(rows[2].open_discrepancies, "bill_amount_mismatch");

    EXPECT_EQ(rows[3].out_trade_no, "ORDER-A5");
    EXPECT_FALSE(rows[3].bill_order_fen.has_value()) << "not in the bill";
    EXPECT_FALSE(rows[3].bill_fee.has_value());
    EXPECT_EQ(rows[3].open_discrepancies, "missing_in_bill");
}

}  // namespace
}  // namespace wxrecon::testing
