// What the refund tests share: the bill tests' simulator on a hand-moved clock with the daemon's own
// pay_client, plus refund calls of both API versions, the simulator's truth about refunds, and waiting
// for a refund to reach its end.
#pragma once

#include <simdjson.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "sim_bills_support.hpp"

namespace wxrecon::testing::refunds {

namespace v2 = protocol::v2;
using wechat::call_outcome;
using wechat::call_result;

// Merchants of the three-merchant key set (sim_keys.cpp cycles through the modes in this order).
constexpr std::size_t v3_merchant = 0;
constexpr std::size_t v2_merchant = 1;

// A refund as the simulator's truth (GET /sim/ledger) has it.
struct refund_truth {
    std::string out_trade_no, refund_id, status;
    std::int64_t amount = 0;
};

inline std::string json_text(simdjson::dom::element e, std::string_view pointer) {
    std::string_view v;
    return e.at_pointer(pointer).get(v) == simdjson::SUCCESS ? std::string(v) : std::string("<absent>");
}

class SimRefunds : public bills::SimBills {
protected:
    // Control calls of any method, over HTTPS when the simulator serves it; the status and body.
    std::pair<int, std::string> control_call(const std::string& method, const std::string& target,
                                             const std::string& json = {}) {
        if (!tls_) {
            const auto r = http_request(port(), method, target, {{"Content-Type", "application/json"}}, json);
            return {r.status, r.body};
        }
        boost::asio::io_context io;
        net::http_client client(io.get_executor(), client_options_);
        net::outbound_request r;
        r.method = method;
        r.url = base() + target;
        if (!json.empty()) r.headers = {{"Content-Type", "application/json"}};
        r.body = json;
        auto done = boost::asio::co_spawn(io, client.send(std::move(r)), boost::asio::use_future);
        io.run();
        const auto ex = done.get();
        if (!ex.response) throw std::runtime_error(target + ": " + ex.error);
        return {ex.response->status, ex.response->body};
    }
    void faults(const std::string& json) {
        const auto [status, body] = control_call("POST", "/sim/faults", json);
        ASSERT_EQ(status, 200) << body;
    }
    // Every refund of the truth by "mchid/out_refund_no".
    std::map<std::string, refund_truth> truth() {
        const auto [status, body] = control_call("GET", "/sim/ledger");
        if (status != 200) throw std::runtime_error("/sim/ledger answered " + std::to_string(status));
        simdjson::dom::parser parser;
        simdjson::dom::array orders;
        if (parser.parse(simdjson::padded_string(body)).at_pointer("/orders").get(orders) !=
            simdjson::SUCCESS)
            throw std::runtime_error("/sim/ledger: no orders");
        std::map<std::string, refund_truth> out;
        for (const simdjson::dom::element o : orders) {
            simdjson::dom::array list;
            if (o.at_pointer("/refunds").get(list) != simdjson::SUCCESS) continue;
            for (const simdjson::dom::element r : list) {
                refund_truth t;
                t.out_trade_no = json_text(o, "/out_trade_no");
                t.refund_id = json_text(r, "/refund_id");
                t.status = json_text(r, "/status");
                std::int64_t amount = 0;
                if (r.at_pointer("/amount").get(amount) == simdjson::SUCCESS) t.amount = amount;
                out[json_text(o, "/mchid") + "/" + json_text(r, "/out_refund_no")] = t;
            }
        }
        return out;
    }
    // Event types of the refund notifications planned for out_refund_no (dropped ones included).
    std::vector<std::string> refund_deliveries(const std::string& out_refund_no) {
        const auto [status, body] = control_call("GET", "/sim/deliveries");
        if (status != 200) throw std::runtime_error("/sim/deliveries answered " + std::to_string(status));
        simdjson::dom::parser parser;
        simdjson::dom::array list;
        if (parser.parse(simdjson::padded_string(body)).at_pointer("/deliveries").get(list) !=
            simdjson::SUCCESS)
            throw std::runtime_error("/sim/deliveries: no list");
        std::vector<std::string> out;
        for (const simdjson::dom::element d : list)
            if (json_text(d, "/out_refund_no") == out_refund_no && json_text(d, "/kind") == "genuine")
                out.push_back(json_text(d, "/event_type"));
        return out;
    }

    call_result v3_refund(std::size_t merchant, const std::string& out_trade_no,
                          const std::string& out_refund_no, std::int64_t refund, std::int64_t total) {
        const auto& access = views_.at(merchant)->access;
        const std::string body =
            json_object()
                .add("out_trade_no", out_trade_no)
                .add("out_refund_no", out_refund_no)
                .add("notify_url", "http://127.0.0.1:9/refunds")
                .add_raw("amount",
                         json_object().add("refund", refund).add("total", total).add("currency", "CNY").str())
                .str();
        return run([&](wechat::pay_client& c) {
            return c.v3(access, "POST", "/v3/refund/domestic/refunds", body, wechat::retry_safety::once_only);
        });
    }
    call_result v3_refund_query(std::size_t merchant, const std::string& out_refund_no) {
        const auto& access = views_.at(merchant)->access;
        const std::string target = "/v3/refund/domestic/refunds/" + out_refund_no;
        return run([&](wechat::pay_client& c) {
            return c.v3(access, "GET", target, "", wechat::retry_safety::idempotent);
        });
    }
    call_result v2_refund(std::size_t merchant, const std::string& out_trade_no,
                          const std::string& out_refund_no, std::int64_t refund, std::int64_t total) {
        const auto& access = views_.at(merchant)->access;
        v2::fields f{{"appid", views_.at(merchant)->appid},
                     {"out_trade_no", out_trade_no},
                     {"out_refund_no", out_refund_no},
                     {"total_fee", std::to_string(total)},
                     {"refund_fee", std::to_string(refund)}};
        return run([&](wechat::pay_client& c) {
            return c.v2(access, "/secapi/pay/refund", f, v2::sign_type::md5, wechat::retry_safety::once_only);
        });
    }
    call_result v2_refundquery(std::size_t merchant, const std::string& out_refund_no) {
        const auto& access = views_.at(merchant)->access;
        v2::fields f{{"appid", views_.at(merchant)->appid}, {"out_refund_no", out_refund_no}};
        return run([&](wechat::pay_client& c) {
            return c.v2(access, "/pay/refundquery", f, v2::sign_type::md5, wechat::retry_safety::idempotent);
        });
    }
    // The status an APIv3 refund query answers.
    std::string v3_status(std::size_t merchant, const std::string& out_refund_no) {
        const auto q = v3_refund_query(merchant, out_refund_no);
        if (q.outcome != call_outcome::ok) return "query failed: " + q.code + " " + q.error;
        simdjson::dom::parser parser;
        simdjson::dom::element answer;
        if (parser.parse(simdjson::padded_string(q.body)).get(answer) != simdjson::SUCCESS) return "not JSON";
        return json_text(answer, "/status");
    }
    // Polls until done() or the deadline; whether done() held.
    static bool eventually(const std::function<bool()>& done,
                           std::chrono::milliseconds deadline = std::chrono::milliseconds(10'000)) {
        const auto until = std::chrono::steady_clock::now() + deadline;
        while (std::chrono::steady_clock::now() < until) {
            if (done()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        return done();
    }
    // A new simulator with the same options (the same seed) in place of this test's: empty truth.
    void restart() {
        sim_.reset();
        sim::sim_options o;
        o.clock = clock_.clock();
        o.tls = tls_;
        sim_ = std::make_unique<running_simulator>(*keys_, o);
        views_.clear();
        for (std::size_t i = 0; i < 3; ++i) views_.push_back(bills::view_of(*keys_, i, base()));
    }
    // An order of the merchant, paid now on the simulator's clock.
    void paid(std::size_t merchant, const std::string& no, std::int64_t amount) {
        pay(merchant, no, amount, format_rfc3339(clock_.clock().seconds()));
    }
};

}  // namespace wxrecon::testing::refunds
