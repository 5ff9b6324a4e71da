#include "workflow/refund_api.hpp"

#include <simdjson.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "store/ledger.hpp"
#include "store/order_store.hpp"
#include "store/refund_store.hpp"
#include "workflow/api_reply.hpp"
#include "workflow/refund_calls.hpp"

namespace wxrecon::workflow {

namespace {

constexpr auto database_deadline = std::chrono::seconds(5);
constexpr auto apply_deadline = std::chrono::seconds(10);
constexpr std::size_t max_reason_characters = 80;

bool valid_out_refund_no(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '|' || c == '*' ||
               c == '@';
    });
}

std::size_t utf8_characters(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

struct refund_request {
    store::refund_registration registration;
    const config::merchant_config* merchant = nullptr;
};

// The refund a request asks for, checked field by field; or the 400 (500) to answer with.
std::variant<reply, refund_request> read_request(const config::config& cfg, const inbound_request& req) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::object body;
    if (parser.parse(padded).get(body) != simdjson::SUCCESS)
        return json_error(400, "body is not a JSON object");
    for (auto [key, value] : body) {
        static constexpr std::string_view known[] = {"mchid", "out_trade_no", "out_refund_no", "amount",
                                                     "reason"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
            return json_error(400, "unknown field " + std::string(key));
        (void)value;
    }
    auto text = [&](std::string_view key) -> std::optional<std::string> {
        std::string_view v;
        if (body[key].get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    };
    refund_request out;
    auto& r = out.registration;
    r.mchid = text("mchid").value_or("");
    out.merchant = cfg.find_merchant(r.mchid);
    if (out.merchant == nullptr)
        return json_error(400, "mchid: no configured merchant has id \"" + r.mchid + "\"");
    r.out_trade_no = text("out_trade_no").value_or("");
    if (r.out_trade_no.empty() || r.out_trade_no.size() > 32)
        return json_error(400, "out_trade_no: the paid order's number required");
    r.out_refund_no = text("out_refund_no").value_or("");
    if (!valid_out_refund_no(r.out_refund_no))
        return json_error(400, "out_refund_no: 1 to 64 characters of [0-9A-Za-z_-|*@] required");
    std::int64_t amount = 0;
    if (body["amount"].get(amount) != simdjson::SUCCESS || amount <= 0)
        return json_error(400, "amount: a positive integer number of fen required");
    r.amount = amount;
    if (body["reason"].error() != simdjson::NO_SUCH_FIELD) {
        r.reason = text("reason");
        if (!r.reason || !is_valid_utf8(*r.reason) || utf8_characters(*r.reason) > max_reason_characters)
            return json_error(400, "reason: a string of at most 80 characters required");
    }
    if (cfg.server.public_base_url.empty())
        return json_error(500, "server.public_base_url is not configured; refunds need it for notify_url");
    if (out.merchant->version == config::api_version::v2 && !out.merchant->merchant_cert_file)
        return json_error(500, "merchant " + r.mchid +
                                   " has no merchant_cert_file; APIv2 refunds need the client certificate");
    return out;
}

}  // namespace

refund_api::refund_api(const config::config& cfg, store::db_pool& pool, key_holder& keys,
                       wechat_clients& clients, store::ledger& ledger, std::shared_ptr<metrics> m,
                       std::string owner, wall_clock clock)
    : cfg_(cfg),
      pool_(pool),
      keys_(keys),
      clients_(clients),
      ledger_(ledger),
      metrics_(std::move(m)),
      owner_(std::move(owner)),
      clock_(std::move(clock)) {}

boost::asio::awaitable<reply> refund_api::get(std::string mchid, std::string out_refund_no) {
    const auto json = co_await store::refund_json(pool_, mchid, out_refund_no,
                                                  std::chrono::steady_clock::now() + database_deadline);
    if (!json) co_return json_error(404, "no refund " + out_refund_no + " for merchant " + mchid);
    co_return reply{200, "application/json", *json};
}

boost::asio::awaitable<reply> refund_api::create(const inbound_request& req) {
    auto read = read_request(cfg_, req);
    if (auto* refused = std::get_if<reply>(&read)) co_return std::move(*refused);
    auto& [r, merchant] = std::get<refund_request>(read);
    const config::merchant_config& m = *merchant;
    const auto keys = keys_.get();  // held for the whole call: the access below points into it
    const config::merchant_keys* mk = keys->find(m.mchid);
    if (mk == nullptr) co_return json_error(500, "no key material is loaded for merchant " + m.mchid);
    if (m.version == config::api_version::v2 && !mk->apiv2_key)
        co_return json_error(
            500, "merchant " + m.mchid + " has no apiv2_key_file; APIv2 refunds are signed with it");

    const std::string mchid = r.mchid, out_refund_no = r.out_refund_no, out_trade_no = r.out_trade_no;
    const std::int64_t amount = r.amount;
    auto build = [&m, base = cfg_.server.public_base_url](const store::refund_order& o) {
        return build_refund_request(m, base, o);
    };
    // The lease outlasts the call (its timeout, and a backup host's), so the tracker waits for its answer.
    const auto lease =
        std::chrono::duration_cast<std::chrono::milliseconds>(3 * cfg_.poller.request_timeout) +
        std::chrono::seconds(5);
    // The tracker's first query follows the refund schedule (refund_delays[0] after it was made).
    const auto first_query = std::chrono::duration_cast<std::chrono::milliseconds>(
        cfg_.poller.refund_delays.empty() ? cfg_.poller.refund_interval_after
                                          : cfg_.poller.refund_delays.front());
    const auto start =
        co_await store::begin_refund(pool_, std::move(r), std::move(build), owner_, lease, first_query,
                                     std::chrono::steady_clock::now() + database_deadline);
    switch (start.outcome) {
        case store::refund_start_outcome::no_order:
            co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
        case store::refund_start_outcome::conflict:
            co_return json_error(409, "out_refund_no " + out_refund_no +
                                          " is already used with a different " + start.conflict);
        case store::refund_start_outcome::not_paid:
            co_return json_error(422,
                                 "the order is " + start.order_state + ": only a paid order is refunded");
        case store::refund_start_outcome::exceeds:
            co_return json_error(422, "refunds would exceed what was paid: paid " +
                                          std::to_string(start.paid) + " fen, refunded or refunding " +
                                          std::to_string(start.committed) + " fen, asked " +
                                          std::to_string(amount) + " fen");
        case store::refund_start_outcome::created:
        case store::refund_start_outcome::same:
            break;
    }
    const int status = start.outcome == store::refund_start_outcome::created ? 201 : 200;
    if (!start.request) {
        // Learned from WeChat Pay (a refund made elsewhere with this number): nothing of ours to send.
        co_return co_await get(mchid, out_refund_no);
    }

    const wechat::merchant_access access = merchant_access_for(m, *mk);
    wechat::pay_client& client = clients_.pay(m);
    const auto sent_at_steady = std::chrono::steady_clock::now();
    const domain::micros sent_at = clock_.micros();
    const wechat::call_result answer = co_await send_refund(client, access, m, *start.request);
    const auto latency =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent_at_steady);

    store::refund_attempt attempt;
    attempt.owner = owner_;
    attempt.outcome = classify_refund_answer(answer);
    const std::string api = start.request->api_version;
    const std::string code =
        answer.code.empty() ? std::string(wechat::to_string(answer.outcome)) : answer.code;
    const std::string message = answer.message.empty() ? answer.error : answer.message;
    if (attempt.outcome == store::refund_attempt_outcome::accepted) {
        if (auto id = refund_id_of(m, answer); !id.empty()) attempt.refund_id = std::move(id);
    } else {
        attempt.code = code;
        attempt.error = message;
    }
    const auto outcome = attempt.outcome;
    const std::string result = outcome == store::refund_attempt_outcome::accepted  ? "accepted"
                               : outcome == store::refund_attempt_outcome::refused ? "refused"
                                                                                   : "unknown";
    metrics_->add("wxrecon_refunds_total", {{"api", api}, {"result", result}});
    spdlog::info("refunds: create result={} mchid={} out_refund_no={} amount={} api={} latency_ms={:.1f}{}",
                 result, mchid, out_refund_no, amount, api, latency.count(),
                 outcome == store::refund_attempt_outcome::accepted
                     ? ""
                     : " error=" + log_quote(code + ": " + message));
    auto json = co_await store::record_refund_attempt(pool_, mchid, out_refund_no, std::move(attempt),
                                                      std::chrono::steady_clock::now() + database_deadline);
    if (outcome == store::refund_attempt_outcome::refused) {
        co_return reply{502, "application/json",
                        json_object()
                            .add("error",
                                 "WeChat Pay refused the refund (nothing was refunded; the same "
                                 "out_refund_no may be tried again): " +
                                     code + ": " + message)
                            .add("code", code)
                            .add("message", message)
                            .str()};
    }
    if (outcome == store::refund_attempt_outcome::accepted) {
        // A refund that is already final in the answer is a fact like a query's (APIv3 says its status).
        auto f = refund_fact_of(m, answer, out_refund_no, "REFUND_CREATED", sent_at);
        if (f && std::get<domain::refund_fact>(f->body).status != domain::refund_status::processing) {
            std::string failure;
            try {
                co_await ledger_.apply(*f, std::chrono::steady_clock::now() + apply_deadline);
            } catch (const std::exception& e) {
                failure = e.what();  // the refund stays PROCESSING here; the tracker's query records it
            }
            if (failure.empty())
                json = co_await store::refund_json(pool_, mchid, out_refund_no,
                                                   std::chrono::steady_clock::now() + database_deadline);
            else
                spdlog::warn("refunds: answer not applied mchid={} out_refund_no={} error={}", mchid,
                             out_refund_no, log_quote(failure));
        }
    }
    if (!json) co_return json_error(500, "the refund row disappeared after it was sent; see the log");
    co_return reply{status, "application/json", *json};
}

}  // namespace wxrecon::workflow
