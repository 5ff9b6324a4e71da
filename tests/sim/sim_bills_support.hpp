// What the bill tests share: a simulator on a hand-moved clock (Beijing 2026-03-15 11:00), the daemon's own
// pay_client with that clock for the merchants of the key set, and reading a downloaded file (gunzip, SHA-1,
// parse with protocol/bill).
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "base/gzip.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "crypto/sha1_stream.hpp"
#include "net/http_client.hpp"
#include "protocol/bill.hpp"
#include "protocol/bill_link.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"
#include "wechat/pay_client.hpp"

namespace wxrecon::testing::bills {

namespace bill = protocol::bill;

inline std::string read_all(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline std::string sha1_of(std::string_view bytes) {
    crypto::sha1_stream s;
    s.update(bytes);
    return s.hex();
}

inline std::string gunzip(std::string_view bytes) {
    std::string out;
    gzip_inflater z;
    const auto fed = z.feed(bytes, [&out](std::string_view piece) -> status {
        out.append(piece);
        return ok;
    });
    if (!fed || !z.finish()) throw std::runtime_error("not gzip");
    return out;
}

// Unix seconds of a Beijing wall-clock time.
inline std::int64_t beijing(int y, int mo, int d, int h, int mi, int s) {
    return *civil_to_unix(y, mo, d, h, mi, s) - 8 * 3600;
}

// A file parsed with the daemon's parser, with its rows.
struct parsed_bill {
    result<bill::bill_totals> totals = make_error(errc::parse_error, "not parsed");
    std::vector<bill::trade_row> trade;
    std::vector<bill::fundflow_row> fund;
};

inline parsed_bill parse(std::string_view text) {
    parsed_bill p;
    bill::row_handlers h;
    h.trade = [&p](const bill::trade_row& r) -> status {
        p.trade.push_back(r);
        return ok;
    };
    h.fundflow = [&p](const bill::fundflow_row& r) -> status {
        p.fund.push_back(r);
        return ok;
    };
    p.totals = bill::parse_bill(text, h);
    return p;
}

// Everything a merchant_access points at, kept alive for the test.
struct merchant_view {
    wechat::merchant_access access;
    std::map<std::string, crypto::public_key, std::less<>> trusted;
    std::string appid;
};

inline std::unique_ptr<merchant_view> view_of(const sim_key_dir& keys, std::size_t index,
                                              const std::string& base) {
    const auto& m = keys.keys.merchants.at(index);
    const auto dir = keys.dir / m.mchid;
    auto v = std::make_unique<merchant_view>();
    v->appid = m.appid;
    v->access.mchid = m.mchid;
    v->access.api_base = base;
    v->access.merchant_serial = m.merchant_serial;
    auto key = crypto::load_private_key_pem(read_all(dir / "apiclient_key.pem"));
    if (!key) throw std::runtime_error(key.err().message);
    v->access.merchant_key = *key;
    v->access.apiv2_key = read_all(dir / "apiv2.key");
    auto pub = crypto::load_public_key_pem(read_all(dir / "wechatpay_pub_key.pem"));
    auto cert = crypto::load_certificate_pem(read_all(dir / "wechatpay_platform_cert.pem"));
    if (!pub || !cert) throw std::runtime_error("cannot load the WeChat Pay keys of " + m.mchid);
    v->trusted[m.public_key_id] = *pub;
    v->trusted[cert->serial] = cert->key;
    auto* trusted = &v->trusted;
    v->access.find_key = [trusted](std::string_view serial, std::int64_t) -> const crypto::public_key* {
        const auto it = trusted->find(serial);
        return it == trusted->end() ? nullptr : &it->second;
    };
    return v;
}

// A downloaded file: the call and the bytes as received.
struct download {
    wechat::call_result call;
    std::string bytes;
};

// The simulator and the client on one manual clock, 2026-03-15 11:00 Beijing unless moved.
class SimBills : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new sim_key_dir(3); }  // APIv3, APIv2, APIv3 merchants
    static void TearDownTestSuite() {
        delete keys_;
        keys_ = nullptr;
    }
    void SetUp() override {
        sim::sim_options o;
        o.clock = clock_.clock();
        o.tls = tls_;
        sim_ = std::make_unique<running_simulator>(*keys_, o);
        for (std::size_t i = 0; i < 3; ++i) views_.push_back(view_of(*keys_, i, base()));
    }
    void TearDown() override { sim_.reset(); }

    std::string base() const {
        return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(sim_->port());
    }
    unsigned short port() const { return sim_->port(); }
    const std::string& mchid(std::size_t i) const { return views_.at(i)->access.mchid; }
    void set_beijing(int y, int mo, int d, int h, int mi, int s) {
        clock_.set(beijing(y, mo, d, h, mi, s) * 1'000'000);
    }

    template <class Call>
    auto run(Call call) {
        boost::asio::io_context io;
        wechat::pay_client client(io.get_executor(), client_options_, clock_.clock());
        auto done = boost::asio::co_spawn(io, call(client), boost::asio::use_future);
        io.run();
        return done.get();
    }
    wechat::call_result apply(std::size_t merchant, const std::string& target) {
        const auto& access = views_.at(merchant)->access;
        return run([&](wechat::pay_client& c) {
            return c.v3(access, "GET", target, "", wechat::retry_safety::idempotent);
        });
    }
    download fetch(std::size_t merchant, const std::string& url) {
        const auto& access = views_.at(merchant)->access;
        const auto file = std::filesystem::temp_directory_path() / ("sim-bill-" + crypto::random_alnum(10));
        download d;
        d.call = run([&](wechat::pay_client& c) { return c.v3_download(access, url, file.string()); });
        d.bytes = read_all(file);
        std::filesystem::remove(file);
        return d;
    }
    download v2_fetch(std::size_t merchant, const std::string& path, protocol::v2::fields fields) {
        const auto& access = views_.at(merchant)->access;
        const auto file = std::filesystem::temp_directory_path() / ("sim-bill-" + crypto::random_alnum(10));
        download d;
        d.call =
            run([&](wechat::pay_client& c) { return c.v2_download(access, path, fields, file.string()); });
        d.bytes = read_all(file);
        std::filesystem::remove(file);
        return d;
    }
    // Apply, download, check the SHA-1 of the decompressed content; the content.
    std::string get_v3(std::size_t merchant, const std::string& target) {
        const auto a = apply(merchant, target);
        EXPECT_EQ(a.outcome, wechat::call_outcome::ok) << a.status << " " << a.body;
        const auto link = bill::parse_bill_link(a.body);
        if (!link) throw std::runtime_error(link.err().message);
        const auto d = fetch(merchant, link->download_url);
        EXPECT_EQ(d.call.outcome, wechat::call_outcome::ok) << d.call.error << d.call.body;
        const bool gz = target.find("tar_type=GZIP") != std::string::npos;
        EXPECT_EQ(has_gzip_magic(d.bytes), gz);
        const std::string content = gz ? gunzip(d.bytes) : d.bytes;
        EXPECT_EQ(sha1_of(content), link->hash_value);
        return content;
    }
    void control(const std::string& target, const std::string& json) { post_control(target, json); }
    // A /sim control call, over HTTPS when the simulator serves it; throws unless 2xx.
    std::string post_control(const std::string& target, const std::string& json) {
        if (!tls_) return sim_control(port(), target, json);
        boost::asio::io_context io;
        net::http_client client(io.get_executor(), client_options_);
        net::outbound_request r;
        r.method = "POST";
        r.url = base() + target;
        r.headers = {{"Content-Type", "application/json"}};
        r.body = json;
        auto done = boost::asio::co_spawn(io, client.send(std::move(r)), boost::asio::use_future);
        io.run();
        const auto ex = done.get();
        if (!ex.response || ex.response->status / 100 != 2)
            throw std::runtime_error(target + ": " + (ex.response ? ex.response->body : ex.error));
        return ex.response->body;
    }
    // An order of the merchant, paid at a Beijing time given as RFC 3339 (with optional coupon).
    std::string pay(std::size_t merchant, const std::string& no, std::int64_t amount, const std::string& at,
                    std::int64_t coupon = 0) {
        control("/sim/orders", json_object()
                                   .add("mchid", mchid(merchant))
                                   .add("out_trade_no", no)
                                   .add("amount", amount)
                                   .add("notify_url", "http://127.0.0.1:9/n")
                                   .add("description", "商品 " + no)
                                   .str());
        return post_control("/sim/pay", json_object()
                                            .add("mchid", mchid(merchant))
                                            .add("out_trade_no", no)
                                            .add("at", at)
                                            .add("coupon", coupon)
                                            .str());
    }
    void refund(std::size_t merchant, const std::string& no, std::int64_t amount, const std::string& at,
                bool notify = true) {
        control("/sim/refund", json_object()
                                   .add("mchid", mchid(merchant))
                                   .add("out_trade_no", no)
                                   .add("amount", amount)
                                   .add("at", at)
                                   .add("notify", notify)
                                   .add("reason", "缺货")
                                   .str());
    }

    inline static sim_key_dir* keys_ = nullptr;
    bool tls_ = false;                    // set before SetUp: the simulator serves HTTPS with its CA
    net::client_options client_options_;  // how the client connects (CA file, client certificate)
    manual_clock clock_{beijing(2026, 3, 15, 11, 0, 0) * 1'000'000};
    std::unique_ptr<running_simulator> sim_;
    std::vector<std::unique_ptr<merchant_view>> views_;
};

}  // namespace wxrecon::testing::bills
