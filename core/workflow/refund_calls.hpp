// Refunds at WeChat Pay, the calls and what their answers mean: the request
// built once from the paid order (APIv3 domestic refunds, APIv2 secapi refund
// over mutual TLS), sending it, asking where a refund stands, and turning a
// verified answer into a fact for the ledger (docs/protocol-notes.md §4.6,
// §7.8, §7.10). Shared by the refund API and the refund tracker.
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "base/result.hpp"
#include "config/config.hpp"
#include "domain/facts.hpp"
#include "store/refund_store.hpp"
#include "wechat/pay_client.hpp"

namespace wxrecon::workflow {

// The request for a refund of the order, with notify_url at wxrecond's refund notification path.
store::stored_refund_request build_refund_request(const config::merchant_config& m,
                                                  const std::string& public_base_url,
                                                  const store::refund_order& o);

// Sends the stored request as it is (once only: the backup host only when it provably never left).
boost::asio::awaitable<wechat::call_result> send_refund(wechat::pay_client& client,
                                                        const wechat::merchant_access& access,
                                                        const config::merchant_config& m,
                                                        const store::stored_refund_request& request);

// Asks where the refund stands (APIv3 GET …/refunds/{out_refund_no}, APIv2 refundquery).
boost::asio::awaitable<wechat::call_result> query_refund(wechat::pay_client& client,
                                                         const wechat::merchant_access& access,
                                                         const config::merchant_config& m,
                                                         const std::string& out_refund_no);

// What an answer to a refund creation says happened. Refused only where WeChat Pay says for certain that
// it did not refund (a business refusal); timeouts after sending, 5xx, rate limits, SYSTEMERROR and
// BIZERR_NEED_RETRY, and answers whose signature fails leave the outcome unknown.
store::refund_attempt_outcome classify_refund_answer(const wechat::call_result& r);

// WeChat Pay has no refund with that number (APIv3 404 RESOURCE_NOT_EXISTS or ORDER_NOT_EXIST, APIv2
// REFUNDNOTEXIST), in a verified answer.
bool is_refund_not_found(const wechat::call_result& r);

// The refund an accepted creation or a query answer describes, as a fact with source refund_query_v3 /
// refund_query_v2, checked to be the refund asked about. An APIv2 creation answer carries no status:
// parse_error (the caller keeps only its refund_id).
result<domain::fact> refund_fact_of(const config::merchant_config& m, const wechat::call_result& answer,
                                    std::string_view out_refund_no, std::string_view event_type,
                                    domain::micros sent_at);

// The refund_id in an accepted answer, empty when there is none.
std::string refund_id_of(const config::merchant_config& m, const wechat::call_result& answer);

}  // namespace wxrecon::workflow
