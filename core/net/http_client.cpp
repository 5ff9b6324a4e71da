#include "net/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "base/encoding.hpp"

namespace wxrecon::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

result<url_parts> parse_url(std::string_view url) {
    constexpr std::string_view http_prefix = "http://";
    if (!url.starts_with(http_prefix)) return make_error(errc::invalid_argument, "URL must start with http://: " + std::string(url));
    std::string_view rest = url.substr(http_prefix.size());
    const auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    url_parts out;
    out.scheme = "http";
    out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (out.target.front() == '?') out.target.insert(0, "/");
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return make_error(errc::invalid_argument, "URL has no usable host: " + std::string(url));
    std::string_view host = authority;
    std::string_view port = "80";
    if (authority.front() == '[') {  // [IPv6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return make_error(errc::invalid_argument, "URL has a broken IPv6 host: " + std::string(url));
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return make_error(errc::invalid_argument, "URL has a broken port: " + std::string(url));
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos)
        return make_error(errc::invalid_argument, "URL has a broken host or port: " + std::string(url));
    out.host = std::string(host);
    out.port = std::string(port);
    return out;
}

std::string_view http_response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

struct http_client::connection {
    explicit connection(asio::any_io_executor ex) : stream(std::move(ex)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
};

http_client::http_client(asio::any_io_executor ex, client_options options)
    : executor_(std::move(ex)), options_(std::move(options)) {}

http_client::~http_client() = default;

void http_client::close_idle() { idle_.clear(); }

asio::awaitable<exchange> http_client::send(outbound_request request) {
    exchange out;
    auto parsed = parse_url(request.url);
    if (!parsed) {
        out.error = parsed.err().message;
        co_return out;
    }
    const url_parts url = std::move(*parsed);
    const std::string key = url.host + ":" + url.port;

    http::request<http::string_body> req{http::string_to_verb(request.method), url.target, 11};
    if (req.method() == http::verb::unknown) {
        out.error = "unknown HTTP method " + request.method;
        co_return out;
    }
    req.set(http::field::host, url.port == "80" ? url.host : key);
    req.set(http::field::user_agent, options_.user_agent);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    req.body() = std::move(request.body);
    req.keep_alive(true);
    req.prepare_payload();

    // A reused connection may have been closed by the server while idle; then one fresh attempt.
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::unique_ptr<connection> conn;
        auto& idle = idle_[key];  // used before the first suspension only: close_idle() may clear the map
        const bool reused = !idle.empty();
        if (reused) {
            conn = std::move(idle.back());
            idle.pop_back();
        } else {
            conn = std::make_unique<connection>(executor_);
            tcp::resolver resolver(executor_);
            auto [rec, endpoints] = co_await resolver.async_resolve(url.host, url.port, asio::as_tuple(asio::use_awaitable));
            if (rec) {
                out.error = "cannot resolve " + url.host + ": " + rec.message();
                co_return out;
            }
            conn->stream.expires_after(options_.connect_timeout);
            auto [cec, endpoint] = co_await conn->stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
            (void)endpoint;
            if (cec) {
                out.error = "cannot connect to " + key + ": " + cec.message();
                co_return out;  // sent stays false: nothing left this machine
            }
        }

        conn->stream.expires_after(options_.exchange_timeout);
        auto [wec, written] = co_await http::async_write(conn->stream, req, asio::as_tuple(asio::use_awaitable));
        (void)written;
        if (wec) {
            if (reused) continue;
            out.sent = true;  // part of it may have reached the server
            out.error = "cannot send to " + key + ": " + wec.message();
            co_return out;
        }
        out.sent = true;
        http::response_parser<http::string_body> parser;
        parser.body_limit(options_.max_body_bytes);
        auto [rec, read] = co_await http::async_read(conn->stream, conn->buffer, parser, asio::as_tuple(asio::use_awaitable));
        if (rec) {
            if (reused && read == 0 && (rec == http::error::end_of_stream || rec == asio::error::connection_reset ||
                                        rec == asio::error::eof)) {
                out.sent = false;
                continue;
            }
            out.error = rec == beast::error::timeout ? "no answer from " + key + " in time"
                        : rec == http::error::body_limit ? "answer from " + key + " exceeds " +
                                                               std::to_string(options_.max_body_bytes) + " bytes"
                                                         : "cannot read answer from " + key + ": " + rec.message();
            co_return out;
        }
        auto& msg = parser.get();
        http_response res;
        res.status = static_cast<int>(msg.result_int());
        for (const auto& h : msg) res.headers.emplace_back(std::string(h.name_string()), std::string(h.value()));
        res.body = std::move(msg.body());
        if (auto& pool = idle_[key]; msg.keep_alive() && pool.size() < options_.max_idle_per_host) {
            conn->stream.expires_never();
            pool.push_back(std::move(conn));
        }
        out.response = std::move(res);
        co_return out;
    }
    out.error = "connection to " + key + " closed before an answer";
    co_return out;
}

}  // namespace wxrecon::net
