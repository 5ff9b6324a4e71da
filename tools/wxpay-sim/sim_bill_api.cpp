// The bills a merchant downloads (docs/protocol-notes.md §6, §7.9): APIv3 applications for the trade and
// fund-flow bills (signed answers naming a download link and the file's SHA-1), the unsigned download
// itself, and APIv2 downloadbill / downloadfundflow, which answer with the file or a FAIL XML. The
// content comes from the truth ledger (sim_bills.cpp); availability, holds and damage from the merchant's
// bill settings (sim_bill_control.cpp).
#include <spdlog/spdlog.h>

#include <chrono>

#include "base/json_writer.hpp"
#include "crypto/crypto.hpp"
#include "crypto/sha1_stream.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace v2 = protocol::v2;
using protocol::bill::bill_kind;
using protocol::bill::trade_bill_type;

namespace {

constexpr std::int64_t download_link_seconds = 300;  // docs/protocol-notes.md §6.1: the newer pages' 5 min
constexpr std::size_t max_download_links = 10000;

std::string sha1_hex(std::string_view bytes) {
    crypto::sha1_stream s;
    s.update(bytes);
    return s.hex();
}

std::optional<trade_bill_type> trade_type_of(std::string_view text) {
    if (text.empty() || text == "ALL") return trade_bill_type::all;
    if (text == "SUCCESS") return trade_bill_type::success;
    if (text == "REFUND") return trade_bill_type::refund;
    return std::nullopt;
}

bool account_known(std::string_view text) {
    return text.empty() || text == "BASIC" || text == "OPERATION" || text == "FEES";
}

std::string field(const v2::fields& in, std::string_view name) {
    const auto it = in.find(name);
    return it == in.end() ? std::string() : it->second;
}

// An APIv2 download refusal: not signed, return_code FAIL (docs/protocol-notes.md §7.9, §6.5).
reply v2_bill_failure(std::string_view message, std::string_view code) {
    v2::fields f;
    f["return_code"] = "FAIL";
    f["return_msg"] = std::string(message);
    f["error_code"] = std::string(code);
    return reply{200, "application/xml", v2::to_xml(f)};
}

std::string bill_link_json(const std::string& hash, const std::string& url) {
    return json_object().add("hash_type", "SHA1").add("hash_value", hash).add("download_url", url).str();
}

}  // namespace

simulator::bill_file simulator::make_bill(merchant_state& m, bill_kind kind, std::string_view bill_date,
                                          std::string_view type_or_account, bool gzip) {
    bill_file f;
    const auto refuse = [&f](bill_refusal why, std::string message) {
        f.refusal = why;
        f.message = std::move(message);
        return f;
    };
    const std::int64_t t = now();
    const std::int64_t today = beijing_midnight_before(t);
    const auto day = beijing_day_start(bill_date);
    if (!day) return refuse(bill_refusal::param_error, "bill_date 格式错误: " + std::string(bill_date));
    if (*day >= today) return refuse(bill_refusal::param_error, "bill_date 只能是今天以前的日期");
    if (*day < earliest_bill_day(t)) return refuse(bill_refusal::param_error, "只能下载三个月以内的账单");
    const auto trade_type = trade_type_of(type_or_account);
    if (kind == bill_kind::trade && !trade_type)
        return refuse(bill_refusal::param_error, "bill_type 错误: " + std::string(type_or_account));
    if (kind == bill_kind::fundflow && !account_known(type_or_account))
        return refuse(bill_refusal::param_error, "account_type 错误: " + std::string(type_or_account));

    const std::string key = std::string(protocol::bill::to_string(kind)) + "/" + std::string(bill_date);
    if (const auto held = m.bills_creating.find(key); held != m.bills_creating.end()) {
        if (--held->second <= 0) m.bills_creating.erase(held);
        return refuse(bill_refusal::creating, "账单生成中");
    }
    // docs/protocol-notes.md §6.2: yesterday's bills are made from 09:00 and ready at 10:00 Beijing.
    if (*day == today - 24 * 3600 && t - today < 10 * 3600)
        return refuse(bill_refusal::creating, "账单生成中");
    const auto orders = model_.orders_of(m.keys->mchid);
    // The simulated merchants' money moves in the basic account only.
    const bool basic = type_or_account.empty() || type_or_account == "BASIC";
    if (!has_activity(orders, *day) || (kind == bill_kind::fundflow && !basic))
        return refuse(bill_refusal::no_statement, "请求的账单文件不存在");

    const auto making = std::chrono::steady_clock::now();
    const std::string content = kind == bill_kind::trade ? trade_bill(orders, *day, *trade_type, m.style)
                                                         : fundflow_bill(orders, m.keys->mchid, *day, m.style,
                                                                         fee_adjustment_of(m, bill_date));
    std::string served = content;
    f.hash_value = sha1_hex(content);
    if (const auto damage = m.bills_corrupt.find(key);
        damage != m.bills_corrupt.end() && damage->second.first != bill_corruption::none) {
        served = corrupt(content, damage->second.first);
        if (damage->second.second) f.hash_value = sha1_hex(served);
    }
    f.served = gzip ? gzip_compress(served) : std::move(served);
    // WeChat Pay makes its bills ahead of time; the simulator makes them when asked, and says how long that
    // took, so a benchmark can tell its time from the client's (bench/run-bills.sh).
    spdlog::info(
        "sim: bill made mchid={} kind={} bill_date={} bytes={} served_bytes={} ms={}", m.keys->mchid,
        protocol::bill::to_string(kind), bill_date, content.size(), f.served.size(),
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - making)
            .count());
    return f;
}

std::pair<int, std::string> simulator::v3_trade_bill(merchant_state& m, const inbound_request& req) {
    return v3_bill_apply(m, req, bill_kind::trade);
}

std::pair<int, std::string> simulator::v3_fundflow_bill(merchant_state& m, const inbound_request& req) {
    return v3_bill_apply(m, req, bill_kind::fundflow);
}

std::pair<int, std::string> simulator::v3_bill_apply(merchant_state& m, const inbound_request& req,
                                                     bill_kind kind) {
    const std::string_view query = req.query();
    const std::string tar = query_param(query, "tar_type");
    if (!tar.empty() && tar != "GZIP") return {400, v3_error_body("PARAM_ERROR", "tar_type 只能是 GZIP")};
    const bill_file f =
        make_bill(m, kind, query_param(query, "bill_date"),
                  query_param(query, kind == bill_kind::trade ? "bill_type" : "account_type"), tar == "GZIP");
    switch (f.refusal) {
        case bill_refusal::param_error:
            return {400, v3_error_body("PARAM_ERROR", f.message)};
        case bill_refusal::creating:
            return {400, v3_error_body("STATEMENT_CREATING", f.message)};
        case bill_refusal::no_statement:
            return {400, v3_error_body("NO_STATEMENT_EXIST", f.message)};
        case bill_refusal::none:
            break;
    }
    const std::int64_t t = now();
    std::erase_if(bill_downloads_, [t](const auto& entry) { return entry.second.expires_at <= t; });
    if (bill_downloads_.size() >= max_download_links) bill_downloads_.erase(bill_downloads_.begin());
    const std::string token = crypto::random_alnum(40);
    bill_downloads_[token] = bill_download{m.keys->mchid, f.served, t + download_link_seconds};
    std::string host(req.header("Host"));
    if (host.empty()) host = endpoint().address().to_string() + ":" + std::to_string(endpoint().port());
    const std::string url =
        std::string(options_.tls ? "https://" : "http://") + host + "/v3/billdownload/file?token=" + token;
    return {200, bill_link_json(f.hash_value, url)};
}

std::optional<reply> simulator::v3_bill_download(merchant_state& m, const inbound_request& req,
                                                 std::pair<int, std::string>& error) {
    const auto link = bill_downloads_.find(query_param(req.query(), "token"));
    if (link == bill_downloads_.end() || link->second.expires_at <= now()) {
        error = {400, v3_error_body("INVALID_REQUEST", "下载链接无效或已过期, 请重新申请账单")};
        return std::nullopt;
    }
    if (link->second.mchid != m.keys->mchid) {
        error = {403, v3_error_body("NO_AUTH", "无权下载该账单")};
        return std::nullopt;
    }
    // docs/protocol-notes.md §6.3: the file itself, without WeChat Pay's signature headers.
    return reply{200, "application/octet-stream", link->second.body};
}

reply simulator::v2_bill(merchant_state& m, const inbound_request& req, const v2::fields& in) {
    const bool fund = req.path == "/pay/downloadfundflow";
    const std::string param_code = fund ? "PARAM_ERROR" : "20001";
    // docs/protocol-notes.md §6.5: downloadfundflow needs the merchant's client certificate. Over HTTPS the
    // simulator asks for one (issued by its CA, common name = mchid); plain HTTP cannot carry one.
    if (fund && options_.tls && req.client_certificate_subject != m.keys->mchid)
        return v2_bill_failure(
            "CERT_ERROR: the merchant's client certificate (apiclient_cert.pem) is required", "CERT_ERROR");
    // docs/protocol-notes.md §6.5: downloadfundflow is signed HMAC-SHA256 only.
    if (fund && field(in, "sign_type") != "HMAC-SHA256")
        return v2_bill_failure("sign_type must be HMAC-SHA256", "PARAM_ERROR");
    if (const std::string appid = field(in, "appid"); !appid.empty() && appid != m.keys->appid)
        return v2_bill_failure("appid and mch_id do not match", param_code);
    const std::string tar = field(in, "tar_type");
    if (!tar.empty() && tar != "GZIP") return v2_bill_failure("invalid tar_type", param_code);
    std::string type = field(in, fund ? "account_type" : "bill_type");
    if (fund) {
        if (type != "Basic" && type != "Operation" && type != "Fees")
            return v2_bill_failure("invalid account_type", "PARAM_ERROR");
        for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    const bill_file f = make_bill(m, fund ? bill_kind::fundflow : bill_kind::trade,
                                  dashed_date(field(in, "bill_date")), type, tar == "GZIP");
    switch (f.refusal) {
        case bill_refusal::param_error:
            return v2_bill_failure(
                f.message.find("_type") != std::string::npos ? f.message : "invalid bill_date", param_code);
        case bill_refusal::creating:
            return v2_bill_failure("Bill Creating", fund ? "BILL_CREATING" : "20003");
        case bill_refusal::no_statement:
            return v2_bill_failure("No Bill Exist", fund ? "NO_BILL_EXIST" : "20002");
        case bill_refusal::none:
            break;
    }
    reply r{200, tar == "GZIP" ? "application/octet-stream" : "text/plain; charset=utf-8", f.served};
    if (fund) r.headers.emplace_back("Digest", "SHA=" + f.hash_value);
    return r;
}

}  // namespace wxrecon::sim
