// The simulator's frame: construction, listening, shutdown, the top-level
// route table that hands each request to one of its four jobs, and the
// helpers those jobs share (sim_server_helpers.hpp).
#include "sim_server.hpp"

#include <boost/asio/ssl/context.hpp>
#include <optional>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "sim_server_helpers.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;

reply json_reply(int status, std::string body) {
    return reply{status, "application/json", std::move(body)};
}

reply control_error(int status, std::string_view message) {
    return json_reply(status, json_object().add("error", message).str());
}

std::string query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

std::string uuid_from(std::uint64_t a, std::uint64_t b) {
    const std::string hex = hex_lower(std::string(reinterpret_cast<const char*>(&a), 8) +
                                      std::string(reinterpret_cast<const char*>(&b), 8));
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) +
           "-" + hex.substr(20, 12);
}

simulator::simulator(asio::io_context& io, sim_keys keys, sim_options options)
    : io_(io),
      keys_(std::move(keys)),
      options_(std::move(options)),
      model_(options_.seed, options_.max_orders),
      signers_(static_cast<std::size_t>(std::max(1, options_.signing_threads))),
      started_(std::chrono::steady_clock::now()) {
    for (auto& m : keys_.merchants) {
        merchant_state s;
        s.keys = &m;
        s.variants = pick_variants(options_.seed, m.mchid);
        s.style = {s.variants.bill_bom, s.variants.bill_crlf, s.variants.bill_count_dot_zero};
        merchants_.emplace(m.mchid, s);
    }
    net::client_options copts;
    copts.exchange_timeout = options_.notify_timeout;
    // Every delivery slot may keep its connection: fewer would reconnect for most notifications.
    copts.max_idle_per_host = static_cast<std::size_t>(std::max(1, options_.delivery_concurrency));
    copts.user_agent = "wxpay-sim/" WXRECON_VERSION;
    client_ = std::make_unique<net::http_client>(io_.get_executor(), copts);
}

simulator::~simulator() {
    signers_.join();
}

void simulator::start() {
    net::http_limits limits;
    limits.max_body_bytes = 256 * 1024;
    limits.max_connections = 4096;
    limits.max_connections_per_address = limits.max_connections;  // every client is on loopback
    std::shared_ptr<asio::ssl::context> tls;
    if (options_.tls) {
        tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
        const std::string chain = keys_.server_cert_pem + keys_.ca_cert_pem;
        tls->use_certificate_chain(asio::buffer(chain));
        tls->use_private_key(asio::buffer(keys_.server_key_pem), asio::ssl::context::pem);
        // Mutual TLS as WeChat Pay does it: a client certificate is asked for and, when presented, must be
        // one the CA issued; the APIs that need one (downloadfundflow) check whose it is.
        tls->add_certificate_authority(asio::buffer(keys_.ca_cert_pem));
        tls->set_verify_mode(asio::ssl::verify_peer);
    }
    server_ = std::make_unique<net::http_server>(
        io_.get_executor(), net::parse_endpoint(options_.listen), limits,
        [this](inbound_request& r) { return handle(r); },
        [](std::string_view) {
            return json_reply(413, v3_error_body("PARAM_ERROR", "request body too large"));
        },
        "sim", net::http_observer{}, tls);
    server_->start();
}

asio::ip::tcp::endpoint simulator::endpoint() const {
    return server_->local_endpoint();
}

asio::awaitable<void> simulator::shutdown() {
    stopping_ = true;
    for (auto* waiter : slot_waiters_) waiter->cancel();
    slot_waiters_.clear();
    if (server_) co_await server_->shutdown(std::chrono::milliseconds(500));
    client_->close_idle();
}

simulator::merchant_state* simulator::merchant(std::string_view mchid) {
    const auto it = merchants_.find(mchid);
    return it == merchants_.end() ? nullptr : &it->second;
}

std::int64_t simulator::now() const {
    return options_.clock.seconds();
}

std::int64_t simulator::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_)
        .count();
}

std::chrono::milliseconds simulator::scaled(std::int64_t ms) const {
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(ms) * options_.time_scale));
}

bool simulator::draw(std::string_view what, std::string_view subject, std::uint64_t n, double rate) const {
    return rate > 0 && seeded_draw(options_.seed, what, subject, n) < rate;
}

asio::awaitable<reply> simulator::handle(inbound_request& req) {
    // Each job owns a part of the path space; the first route that matches takes the request.
    struct route {
        std::string_view path;
        bool whole_path;  // false: path is a prefix
        asio::awaitable<reply> (simulator::*handler)(inbound_request&);
    };
    static constexpr route routes[] = {
        {"/v3/", false, &simulator::handle_v3},
        {"/pay/", false, &simulator::handle_v2},
        {"/secapi/pay/", false, &simulator::handle_v2},
        {"/sns/jscode2session", true, &simulator::handle_login},
        {"/sim/", false, &simulator::handle_control},
    };
    const std::string_view path = req.path;
    for (const auto& r : routes) {
        if (r.whole_path ? path == r.path : path.starts_with(r.path))
            co_return co_await (this->*r.handler)(req);
    }
    co_return json_reply(404, v3_error_body("NOT_FOUND", "no such endpoint"));
}

}  // namespace wxrecon::sim
