#include "store/bill_store.hpp"

#include <spdlog/spdlog.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <ctime>

#include "base/encoding.hpp"
#include "base/gzip.hpp"
#include "base/json_writer.hpp"
#include "crypto/sha1_stream.hpp"
#include "store/copy_writer.hpp"

namespace wxrecon::store {
namespace {

namespace bill = protocol::bill;

constexpr std::size_t file_part_bytes = 1024 * 1024;

// Unix seconds -> a timestamptz literal PostgreSQL reads exactly.
std::string timestamptz_text(std::int64_t unix_seconds) {
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[40];
    std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S+00", &tm);
    return out;
}

// The decompressed content's SHA-1, and how the file is stored.
struct file_digest {
    std::string hash;
    file_content_info info;
};

file_digest digest_file(const std::string& path) {
    crypto::sha1_stream sha1;
    const auto read = read_file_content(path, [&sha1](std::string_view piece) -> status {
        sha1.update(piece);
        return ok;
    });
    if (!read) throw std::runtime_error("bill file " + read.err().message);
    return {sha1.hex(), *read};
}

const char* const trade_columns[] = {"bill_id",
                                     "line",
                                     "is_refund",
                                     "trade_time",
                                     "appid",
                                     "mchid",
                                     "sub_mchid",
                                     "device_info",
                                     "transaction_id",
                                     "out_trade_no",
                                     "openid",
                                     "trade_type",
                                     "trade_state",
                                     "bank_type",
                                     "currency",
                                     "settlement_amount_fen",
                                     "coupon_amount_fen",
                                     "refund_id",
                                     "out_refund_no",
                                     "refund_amount_fen",
                                     "recharge_coupon_refund_fen",
                                     "refund_type",
                                     "refund_status",
                                     "description",
                                     "attach",
                                     "fee",
                                     "fee_rate",
                                     "order_amount_fen",
                                     "refund_requested_fen",
                                     "fee_rate_note",
                                     "refund_requested_at",
                                     "refund_succeeded_at"};

const char* const fund_columns[] = {"bill_id",    "line",          "booked_at",     "business_order_id",
                                    "flow_id",    "business_name", "business_type", "direction",
                                    "amount_fen", "balance_fen",   "applicant",     "remark",
                                    "voucher_id"};

void copy_trade_row(copy_writer& copy, std::int64_t bill_id, const bill::trade_row& r) {
    copy.integer(bill_id).integer(r.line).boolean(r.kind == bill::trade_row_kind::refund);
    copy.text(timestamptz_text(r.trade_time))
        .text(r.appid)
        .text(r.mchid)
        .text(r.sub_mchid)
        .text(r.device_info);
    copy.text(r.transaction_id).text(r.out_trade_no).text(r.openid).text(r.trade_type).text(r.trade_state);
    copy.text(r.bank_type).text(r.currency).integer(r.settlement_amount_fen).integer(r.coupon_amount_fen);
    copy.text(r.refund_id)
        .text(r.out_refund_no)
        .integer(r.refund_amount_fen)
        .integer(r.recharge_coupon_refund_fen);
    copy.text(r.refund_type).text(r.refund_status).text(r.description).text(r.attach);
    copy.text(bill::format_fee(r.fee)).text(r.fee_rate).integer(r.order_amount_fen);
    copy.integer(r.refund_requested_amount_fen).text(r.fee_rate_note);
    r.refund_requested_at ? copy.text(timestamptz_text(*r.refund_requested_at)) : copy.null();
    r.refund_succeeded_at ? copy.text(timestamptz_text(*r.refund_succeeded_at)) : copy.null();
    copy.end_row();
}

void copy_fund_row(copy_writer& copy, std::int64_t bill_id, const bill::fundflow_row& r) {
    copy.integer(bill_id).integer(r.line).text(timestamptz_text(r.booked_at)).text(r.business_order_id);
    copy.text(r.flow_id).text(r.business_name).text(r.business_type);
    copy.text(r.direction == bill::fund_direction::income ? "income" : "expense");
    copy.integer(r.amount_fen).integer(r.balance_fen).text(r.applicant).text(r.remark).text(r.voucher_id);
    copy.end_row();
}

// What one read of the file gave: the parse's totals (or its error) and, when the whole content went
// through the parser, the content's digest.
struct parsed_file {
    result<bill::bill_totals> totals;
    std::optional<file_digest> digest;
};

// Parses the file's content into its rows table with COPY, hashing the same decompressed bytes on the way.
parsed_file copy_rows(pqxx::transaction_base& tx, const bill_file& f, std::int64_t bill_id) {
    const bool trade = f.kind == bill::bill_kind::trade;
    const auto& columns = trade ? std::vector<std::string>(std::begin(trade_columns), std::end(trade_columns))
                                : std::vector<std::string>(std::begin(fund_columns), std::end(fund_columns));
    copy_writer copy(tx, trade ? "wxrecon.bill_trade_rows" : "wxrecon.bill_fund_rows", columns);
    bill::row_handlers handlers;
    handlers.trade = [&](const bill::trade_row& r) -> status {
        copy_trade_row(copy, bill_id, r);
        return ok;
    };
    handlers.fundflow = [&](const bill::fundflow_row& r) -> status {
        copy_fund_row(copy, bill_id, r);
        return ok;
    };
    bill::bill_parser parser(std::move(handlers), f.kind);
    crypto::sha1_stream sha1;
    const auto read = read_file_content(f.path, [&parser, &sha1](std::string_view piece) {
        sha1.update(piece);
        return parser.feed(piece);
    });
    parsed_file out{read ? parser.finish() : result<bill::bill_totals>(read.err()), std::nullopt};
    copy.complete();
    if (!out.totals && out.totals.err().code == errc::io_error)
        throw std::runtime_error("bill file " + out.totals.err().message);
    if (read) out.digest = file_digest{sha1.hex(), *read};
    return out;
}

// The file as received, in parts: evidence that can be checked again later.
void store_file_parts(pqxx::transaction_base& tx, const bill_file& f, std::int64_t bill_id) {
    std::string part;
    int number = 0;
    const auto flush = [&] {
        tx.exec_params(
            "INSERT INTO wxrecon.bill_files (bill_id, part, data) VALUES ($1, $2, $3)", bill_id, number++,
            pqxx::binarystring(part.data(), part.size()));  // sent as binary: no hex text to make and decode
        part.clear();
    };
    // As stored, not decompressed: gunzipping a million-row day again for nothing cost half a second.
    const auto read = read_file_content(f.path, {}, [&](std::string_view bytes) -> status {
        part.append(bytes);
        if (part.size() >= file_part_bytes) flush();
        return ok;
    });
    if (!read) throw std::runtime_error("bill file " + read.err().message);
    if (!part.empty()) flush();
}

std::int64_t rows_of(const bill::bill_totals& totals) {
    return std::visit([](const auto& t) { return t.rows; }, totals);
}

// Hashes are stored as the digest spells them: lower-case hex.
std::string hex_lower(std::string hex) {
    std::ranges::transform(hex, hex.begin(),
                           [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; });
    return hex;
}

stored_bill hash_mismatch(const std::string& content_hash, const std::string& wechat_hash) {
    stored_bill out;
    out.outcome = bill_store_outcome::hash_mismatch;
    out.hash_value = content_hash;
    out.error = "SHA-1 of the content is " + content_hash + ", WeChat Pay said " + wechat_hash;
    return out;
}

stored_bill store_bill_file(pqxx::connection_base& conn, const bill_file& f) {
    using clock = std::chrono::steady_clock;
    const auto ms_since = [](clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t).count();
    };
    // With WeChat Pay's hash the content is hashed as it is parsed and COPYed, in the same read (a second
    // pass cost 0.7 s of a million-row day, the database idle): nothing is committed unless it matches.
    // Without one, the content is named by its digest before anything is parsed.
    std::optional<file_digest> digest;
    if (!f.hash_value) {
        const auto started = clock::now();
        digest = digest_file(f.path);
        spdlog::debug("bills: digest of {} in {} ms", f.path, ms_since(started));
    }
    const std::string expected_hash = digest ? digest->hash : hex_lower(*f.hash_value);
    pqxx::work tx(conn);
    const auto inserted = tx.exec_params(
        "INSERT INTO wxrecon.bills (mchid, bill_date, kind, bill_type, hash_value, status, file_bytes, "
        "file_gzip)"
        " VALUES ($1, $2::date, $3, $4, $5, 'parsed', 0, false) ON CONFLICT DO NOTHING RETURNING id",
        f.mchid, f.bill_date, bill::to_string(f.kind), f.bill_type, expected_hash);
    if (inserted.empty()) {
        // Stored before under WeChat Pay's hash: this copy is checked before it is called the same.
        if (!digest) digest = digest_file(f.path);
        if (!iequals(digest->hash, expected_hash)) return hash_mismatch(digest->hash, *f.hash_value);
        const auto row = tx.exec_params1(
            "SELECT id, rows, coalesce(totals::text, ''), coalesce(error, '') FROM wxrecon.bills"
            " WHERE mchid = $1 AND bill_date = $2::date AND kind = $3 AND bill_type = $4 AND hash_value = $5",
            f.mchid, f.bill_date, bill::to_string(f.kind), f.bill_type, expected_hash);
        stored_bill out;
        out.outcome = bill_store_outcome::same_file;
        out.hash_value = digest->hash;
        out.bill_id = row[0].as<std::int64_t>();
        out.rows = row[1].as<std::int64_t>();
        out.totals_json = row[2].as<std::string>();
        out.error = row[3].as<std::string>();
        return out;
    }
    stored_bill out;
    out.bill_id = inserted[0][0].as<std::int64_t>();

    // The rows go in a subtransaction: a file that turns out malformed half-way keeps its bill row
    // (status malformed, with the reason) and the file, and none of its rows.
    std::optional<parsed_file> parsed;
    {
        pqxx::subtransaction rows(tx, "bill_rows");
        const auto copying = clock::now();
        parsed = copy_rows(rows, f, out.bill_id);
        spdlog::debug("bills: parse and COPY of {} in {} ms", f.path, ms_since(copying));
        if (parsed->totals)
            rows.commit();
        else
            rows.abort();
    }
    // A parse that stopped early did not see the whole content: it is hashed again, whole.
    if (!digest) digest = parsed->digest ? *parsed->digest : digest_file(f.path);
    if (!iequals(digest->hash, expected_hash)) return hash_mismatch(digest->hash, *f.hash_value);
    out.hash_value = digest->hash;
    const auto storing = clock::now();
    store_file_parts(tx, f, out.bill_id);
    spdlog::debug("bills: file parts of {} in {} ms", f.path, ms_since(storing));
    const auto& totals = parsed->totals;
    if (totals) {
        out.rows = rows_of(*totals);
        out.totals_json = bill::totals_json(*totals);
        // A large day changes the table's statistics: the matching that follows is planned on fresh ones
        // (hash joins for a million rows rather than a million index probes). Only the columns the
        // matching filters and joins on: all 32 took about half a second of a million-row day.
        if (out.rows >= 10000)
            tx.exec(f.kind == bill::bill_kind::trade
                        ? "ANALYZE wxrecon.bill_trade_rows (bill_id, is_refund, transaction_id, out_trade_no)"
                        : "ANALYZE wxrecon.bill_fund_rows (bill_id, business_order_id, business_type, "
                          "business_name, direction)");
        tx.exec_params(
            "UPDATE wxrecon.bills SET rows = $2, status = $3, totals = $4::jsonb, file_bytes = $5, file_gzip "
            "= $6"
            " WHERE id = $1",
            out.bill_id, out.rows, out.rows == 0 ? "empty" : "parsed", out.totals_json,
            static_cast<std::int64_t>(digest->info.file_bytes), digest->info.gzip);
    } else {
        out.outcome = bill_store_outcome::malformed;
        out.error = totals.err().message;
        tx.exec_params(
            "UPDATE wxrecon.bills SET status = 'malformed', error = $2, file_bytes = $3, file_gzip = $4"
            " WHERE id = $1",
            out.bill_id, out.error, static_cast<std::int64_t>(digest->info.file_bytes), digest->info.gzip);
    }
    tx.commit();
    return out;
}

domain::fact payment_fact_of(const pqxx::row& row, const std::string& mchid) {
    domain::payment_fact p;
    p.out_trade_no = row["out_trade_no"].as<std::string>();
    p.state = domain::trade_state::success;
    p.appid = row["appid"].as<std::string>();
    p.transaction_id = row["transaction_id"].as<std::string>();
    p.trade_type = row["trade_type"].as<std::string>();
    p.bank_type = row["bank_type"].as<std::string>();
    p.payer_openid = row["openid"].as<std::string>();
    p.currency = row["currency"].as<std::string>();
    p.amount_total = row["order_amount_fen"].as<std::int64_t>();
    // What the payer paid: the order amount less the coupons (docs/protocol-notes.md §6.6).
    p.payer_total = std::max<std::int64_t>(0, *p.amount_total - row["coupon_amount_fen"].as<std::int64_t>());
    p.success_time = row["trade_micros"].as<std::int64_t>();

    domain::fact f;
    f.mchid = mchid;
    f.source = domain::fact_source::bill;
    f.event_type = "BILL.PAYMENT";
    // Observed when it happened: a bill never outranks what the ledger recorded after the payment.
    f.observed_at = *p.success_time;
    f.occurred_at = p.success_time;
    f.payload_json = row["payload"].as<std::string>();
    f.body = std::move(p);
    return f;
}

std::vector<domain::fact> bill_payments_unknown_to_ledger(pqxx::connection_base& conn,
                                                          const std::string& mchid, const std::string& day) {
    pqxx::read_transaction tx(conn);
    // The day's matching has listed them as missing_in_ledger with their bill line: a lookup each, not
    // another pass over the bill's rows.
    const auto rows = tx.exec_params(
        "SELECT b.out_trade_no, b.appid, b.transaction_id, b.trade_type, b.bank_type, b.openid, b.currency,"
        " b.order_amount_fen, b.coupon_amount_fen, wxrecon.to_micros(b.trade_time) AS trade_micros,"
        " to_jsonb(b)::text AS payload"
        " FROM wxrecon.discrepancies d"
        " JOIN wxrecon.bill_trade_rows b"
        "   ON b.bill_id = (d.detail->>'bill_id')::bigint AND b.line = (d.detail->>'line')::bigint"
        " LEFT JOIN wxrecon.orders o ON o.mchid = d.mchid AND o.out_trade_no = b.out_trade_no"
        " WHERE d.mchid = $1 AND d.bill_date = $2::date AND d.kind = 'missing_in_ledger'"
        "   AND d.resolved_at IS NULL AND NOT b.is_refund"
        "   AND (o.success_time IS NULL OR o.transaction_id IS DISTINCT FROM b.transaction_id)"
        " ORDER BY b.bill_id, b.line",
        mchid, day);
    std::vector<domain::fact> facts;
    facts.reserve(rows.size());
    for (const auto& row : rows) facts.push_back(payment_fact_of(row, mchid));
    return facts;
}

reconciliation reconcile_bill_day(pqxx::connection_base& conn, const std::string& mchid,
                                  const std::string& day, std::chrono::microseconds tolerance) {
    pqxx::work tx(conn);
    const auto row = tx.exec_params1(
        "SELECT status, ledger_payments, ledger_paid_fen, ledger_refunds, ledger_refunded_fen, bill_payments,"
        " bill_paid_fen, bill_refunds, bill_refunded_fen, trade_fee_total::text, fund_fee_total::text, "
        "differences"
        " FROM wxrecon.reconcile_bill_day($1, $2::date, $3 * interval '1 microsecond')",
        mchid, day, static_cast<std::int64_t>(tolerance.count()));
    tx.commit();
    reconciliation r;
    r.mchid = mchid;
    r.bill_date = day;
    r.status = row[0].as<std::string>();
    std::int64_t* counts[] = {&r.ledger_payments,     &r.ledger_paid_fen,  &r.ledger_refunds,
                              &r.ledger_refunded_fen, &r.bill_payments,    &r.bill_paid_fen,
                              &r.bill_refunds,        &r.bill_refunded_fen};
    for (std::size_t i = 0; i < std::size(counts); ++i)
        *counts[i] = row[static_cast<int>(i) + 1].as<std::int64_t>();
    if (!row[9].is_null()) r.trade_fee_total = row[9].as<std::string>();
    if (!row[10].is_null()) r.fund_fee_total = row[10].as<std::string>();
    r.differences = row[11].as<std::int64_t>();
    return r;
}

}  // namespace

const char* to_string(bill_store_outcome outcome) noexcept {
    switch (outcome) {
        case bill_store_outcome::stored:
            return "stored";
        case bill_store_outcome::same_file:
            return "same_file";
        case bill_store_outcome::malformed:
            return "malformed";
        case bill_store_outcome::hash_mismatch:
            return "hash_mismatch";
    }
    return "?";
}

std::string reconciliation::json() const {
    json_object o;
    o.add("mchid", mchid).add("bill_date", bill_date).add("status", status);
    o.add("ledger_payments", ledger_payments).add("ledger_paid_fen", ledger_paid_fen);
    o.add("ledger_refunds", ledger_refunds).add("ledger_refunded_fen", ledger_refunded_fen);
    o.add("bill_payments", bill_payments).add("bill_paid_fen", bill_paid_fen);
    o.add("bill_refunds", bill_refunds).add("bill_refunded_fen", bill_refunded_fen);
    trade_fee_total ? o.add("trade_fee_total", *trade_fee_total) : o.add_null("trade_fee_total");
    fund_fee_total ? o.add("fund_fee_total", *fund_fee_total) : o.add_null("fund_fee_total");
    o.add("differences", differences);
    return o.str();
}

boost::asio::awaitable<stored_bill> store_bill_file(db_pool& pool, bill_file file) {
    auto job = [file = std::move(file)](pqxx::connection_base& c) { return store_bill_file(c, file); };
    co_return co_await pool.run<stored_bill>(std::move(job));
}

boost::asio::awaitable<bool> claim_bill_fetch(db_pool& pool, std::string mchid, std::string bill_date,
                                              std::string owner, std::chrono::milliseconds lease) {
    auto job = [mchid = std::move(mchid), day = std::move(bill_date), owner = std::move(owner),
                lease](pqxx::connection_base& c) {
        return !pqxx::nontransaction(c)
                    .exec_params(
                        "INSERT INTO wxrecon.reconciliations AS r (mchid, bill_date, fetch_owner, "
                        "fetch_lease_until)"
                        " VALUES ($1, $2::date, $3, now() + $4 * interval '1 millisecond')"
                        " ON CONFLICT (mchid, bill_date) DO UPDATE"
                        " SET fetch_owner = excluded.fetch_owner, fetch_lease_until = "
                        "excluded.fetch_lease_until"
                        " WHERE r.fetch_lease_until IS NULL OR r.fetch_lease_until < now()"
                        "    OR r.fetch_owner = excluded.fetch_owner"
                        " RETURNING 1",
                        mchid, day, owner, static_cast<std::int64_t>(lease.count()))
                    .empty();
    };
    co_return co_await pool.run<bool>(std::move(job));
}

boost::asio::awaitable<void> release_bill_fetch(db_pool& pool, std::string mchid, std::string bill_date,
                                                std::string owner) {
    auto job = [mchid = std::move(mchid), day = std::move(bill_date),
                owner = std::move(owner)](pqxx::connection_base& c) {
        pqxx::nontransaction(c).exec_params(
            "UPDATE wxrecon.reconciliations SET fetch_owner = NULL, fetch_lease_until = NULL"
            " WHERE mchid = $1 AND bill_date = $2::date AND fetch_owner = $3",
            mchid, day, owner);
        return true;
    };
    co_await pool.run<bool>(std::move(job));
}

boost::asio::awaitable<void> record_no_trade_bill(db_pool& pool, std::string mchid, std::string bill_date) {
    auto job = [mchid = std::move(mchid), day = std::move(bill_date)](pqxx::connection_base& c) {
        pqxx::nontransaction(c).exec_params(
            "INSERT INTO wxrecon.reconciliations (mchid, bill_date, no_trade_bill) VALUES ($1, $2::date, "
            "true)"
            " ON CONFLICT (mchid, bill_date) DO UPDATE SET no_trade_bill = true",
            mchid, day);
        return true;
    };
    co_await pool.run<bool>(std::move(job));
}

boost::asio::awaitable<std::vector<domain::fact>> bill_payments_unknown_to_ledger(db_pool& pool,
                                                                                  std::string mchid,
                                                                                  std::string bill_date) {
    auto job = [mchid = std::move(mchid), day = std::move(bill_date)](pqxx::connection_base& c) {
        return bill_payments_unknown_to_ledger(c, mchid, day);
    };
    co_return co_await pool.run<std::vector<domain::fact>>(std::move(job));
}

boost::asio::awaitable<std::int64_t> open_bill_differences(db_pool& pool, std::string mchid) {
    auto job = [mchid = std::move(mchid)](pqxx::connection_base& c) {
        return pqxx::nontransaction(c)
            .exec_params1(
                "SELECT count(*) FROM wxrecon.discrepancies"
                " WHERE mchid = $1 AND bill_date IS NOT NULL AND resolved_at IS NULL",
                mchid)[0]
            .as<std::int64_t>();
    };
    co_return co_await pool.run<std::int64_t>(std::move(job));
}

boost::asio::awaitable<std::int64_t> purge_bills_before(db_pool& pool, std::string before_day) {
    auto job = [day = std::move(before_day)](pqxx::connection_base& c) {
        pqxx::work tx(c);
        const auto gone =
            tx.exec_params("DELETE FROM wxrecon.bills WHERE bill_date < $1::date", day).affected_rows();
        tx.commit();
        return static_cast<std::int64_t>(gone);
    };
    co_return co_await pool.run<std::int64_t>(std::move(job));
}

boost::asio::awaitable<std::optional<std::string>> last_reconciled_day(db_pool& pool, std::string mchid,
                                                                       std::string not_after) {
    auto job = [mchid = std::move(mchid), not_after = std::move(not_after)](pqxx::connection_base& c) {
        const auto day = pqxx::nontransaction(c).exec_params1(
            "SELECT max(bill_date)::text FROM wxrecon.reconciliations"
            " WHERE mchid = $1 AND reconciled_at IS NOT NULL AND bill_date <= $2::date",
            mchid, not_after)[0];
        return day.is_null() ? std::optional<std::string>{}
                             : std::optional<std::string>{day.as<std::string>()};
    };
    co_return co_await pool.run<std::optional<std::string>>(std::move(job));
}

boost::asio::awaitable<reconciliation> reconcile_bill_day(db_pool& pool, std::string mchid,
                                                          std::string bill_date,
                                                          std::chrono::microseconds cross_day_tolerance) {
    auto job = [mchid = std::move(mchid), day = std::move(bill_date),
                cross_day_tolerance](pqxx::connection_base& c) {
        return reconcile_bill_day(c, mchid, day, cross_day_tolerance);
    };
    co_return co_await pool.run<reconciliation>(std::move(job));
}

}  // namespace wxrecon::store
