// APIv2 wire format: flat <xml> documents, MD5 / HMAC-SHA256 signatures, the
// payment notification and the AES-256-ECB encrypted refund notification.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "domain/facts.hpp"

namespace wxrecon::protocol::v2 {

using fields = std::map<std::string, std::string, std::less<>>;  // name -> value, sorted by byte order

enum class sign_type { md5, hmac_sha256 };

// The largest APIv2 document read; WeChat Pay's are a few KiB.
inline constexpr std::size_t max_xml_bytes = 65536;
// Parses <xml><name>value</name>...</xml> (text or CDATA). Refuses with errc::forbidden_xml any
// document that contains a DOCTYPE, DTD or entity declaration (checked before parsing), with
// errc::parse_error anything that is not a flat XML document. max_bytes bounds the input.
result<fields> parse_xml(std::string_view xml, std::string_view root = "xml",
                         std::size_t max_bytes = max_xml_bytes);
// Serialises as <xml><k><![CDATA[v]]></k>...</xml>; values containing "]]>" are split safely.
std::string to_xml(const fields& f);

// docs/protocol-notes.md §7.2: all fields except "sign" with non-empty values, sorted, "k=v&...&key=<api
// key>"; MD5 -> upper hex (32), HMAC-SHA256 (keyed with the API key) -> upper hex (64).
std::string sign(const fields& f, std::string_view api_key, sign_type type);
// Verifies f["sign"] in constant time. The algorithm comes from f["sign_type"] when present,
// otherwise from the signature's length (32 hex = MD5, 64 hex = HMAC-SHA256).
bool verify(const fields& f, std::string_view api_key);

// Refund req_info: AES-256-ECB with key = lower-hex MD5 of the APIv2 key; returns the inner XML text.
result<std::string> decrypt_req_info(std::string_view req_info_base64, std::string_view api_key);
std::string encrypt_req_info(std::string_view inner_xml, std::string_view api_key);

// A field's value, "" when absent.
std::string field(const fields& f, std::string_view name);
// A non-negative integer number of fen ("100"); nullopt for anything else.
std::optional<std::int64_t> parse_fen(std::string_view text);
// The fields as a JSON object without the sign (the payload stored with a fact).
std::string to_json(const fields& f);

// The payment in a verified payment notification or orderquery answer. A notification carries no
// trade_state (it is SUCCESS); a query does. Paid states need out_trade_no, transaction_id, total_fee
// and time_end; cash_fee (what the payer paid) defaults to total_fee. parse_error names what is wrong.
result<domain::payment_fact> read_payment(const fields& f);

// The refund numbered out_refund_no in a verified refundquery answer: the answer lists refund_count
// refunds as out_refund_no_$n, refund_id_$n, refund_fee_$n, refund_status_$n (SUCCESS, PROCESSING,
// REFUNDCLOSE, CHANGE = abnormal) and refund_success_time_$n, beside the order's out_trade_no,
// transaction_id and total_fee. parse_error names what is missing or unknown.
result<domain::refund_fact> read_refund_query(const fields& f, std::string_view out_refund_no);

// "yyyyMMddHHmmss" and "yyyy-MM-dd HH:mm:ss" Beijing time -> Unix seconds.
result<std::int64_t> parse_beijing_time(std::string_view text);
// Unix seconds -> "yyyyMMddHHmmss" Beijing time (unifiedorder's time_expire).
std::string format_beijing_time(std::int64_t unix_seconds);

}  // namespace wxrecon::protocol::v2
