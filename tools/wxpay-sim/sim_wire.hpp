// What the simulator puts on the wire for an order or refund: APIv3 JSON
// objects (query answers, notification payloads), APIv2 field sets, and the
// error bodies of both APIs. Pure functions of the model.
#pragma once

#include <string>
#include <string_view>

#include "protocol/v2.hpp"
#include "sim_faults.hpp"
#include "sim_model.hpp"

namespace wxrecon::sim {

std::string_view trade_state_desc(domain::trade_state s) noexcept;

// The transaction object of a query answer or a payment notification (docs/protocol-notes.md §3.4 / §4.2).
std::string transaction_object(const order_record& o, const protocol_variants& variants);
// The refund object of a refund create / query answer (docs/protocol-notes.md §4.6).
std::string refund_api_object(const order_record& o, const refund_record& r);
// The decrypted payload of a refund notification (docs/protocol-notes.md §3.5).
std::string refund_notification_object(const order_record& o, const refund_record& r);

// {"code":…,"message":…}
std::string v3_error_body(std::string_view code, std::string_view message);

// "yyyyMMddHHmmss" / "yyyy-MM-dd HH:mm:ss" in Beijing time.
std::string beijing_compact(std::int64_t unix_seconds);
std::string beijing_spaced(std::int64_t unix_seconds);

// APIv2 payment notification / order query fields, without sign.
protocol::v2::fields v2_order_fields(const order_record& o, std::string_view nonce);
// The inner <root> fields of an APIv2 refund notification.
protocol::v2::fields v2_refund_inner_fields(const order_record& o, const refund_record& r);
std::string v2_inner_xml(const protocol::v2::fields& f);  // <root>…</root>
// Adds sign_type (unless omitted) and sign to f.
void v2_sign(protocol::v2::fields& f, std::string_view api_key, protocol::v2::sign_type type,
             bool include_sign_type);
// An APIv2 request parameter, "" when absent.
std::string v2_param(const protocol::v2::fields& in, std::string_view name);
// return_code and result_code SUCCESS.
protocol::v2::fields v2_success();
// Amounts in fen: digits only, and short enough for std::stoll.
bool is_fen(std::string_view text);
// The APIv2 spelling of a refund status: SUCCESS, CHANGE (ABNORMAL), REFUNDCLOSE (CLOSED), PROCESSING.
std::string_view v2_refund_status(domain::refund_status s) noexcept;
// The APIv3 refund paths (create; query by out_refund_no appended).
inline constexpr std::string_view v3_refunds_path = "/v3/refund/domestic/refunds";
inline constexpr std::string_view v3_refund_query_path = "/v3/refund/domestic/refunds/";
// return_code SUCCESS, result_code FAIL with err_code — or return_code FAIL when err_code is empty.
protocol::v2::fields v2_failure(std::string_view err_code, std::string_view message);

}  // namespace wxrecon::sim
