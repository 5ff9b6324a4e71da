// What the poller and the refund tracker do alike with a failed query: the
// result label it counts under, and when it is tried again.
#pragma once

#include <string_view>

#include "domain/facts.hpp"
#include "wechat/pay_client.hpp"

namespace wxrecon::workflow {

// The result label of an unanswered or refused query in wxrecon_queries_total and
// wxrecon_refund_queries_total; not_found: WeChat Pay said it has no such order or refund.
std::string_view failed_query_label(const wechat::call_result& r, bool not_found);

// When a failed query is tried again: 3 s later, 10 s after a rate limit, plus up to as much again of
// jitter, so that instances do not retry in step.
domain::micros retry_at(const wechat::call_result& r, domain::micros now);

}  // namespace wxrecon::workflow
