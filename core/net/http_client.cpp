#include "net/http_client.hpp"

#include <openssl/ssl.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cstdio>

#include "base/encoding.hpp"

namespace wxrecon::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

result<url_parts> parse_url(std::string_view url) {
    const bool tls = url.starts_with("https://");
    if (!tls && !url.starts_with("http://"))
        return make_error(errc::invalid_argument,
                          "URL must start with http:// or https://: " + std::string(url));
    std::string_view rest = url.substr(tls ? 8 : 7);
    const auto slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    url_parts out;
    out.scheme = tls ? "https" : "http";
    out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (out.target.front() == '?') out.target.insert(0, "/");
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        return make_error(errc::invalid_argument, "URL has no usable host: " + std::string(url));
    std::string_view host = authority;
    std::string_view port = tls ? "443" : "80";
    if (authority.front() == '[') {  // [IPv6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return make_error(errc::invalid_argument, "URL has a broken IPv6 host: " + std::string(url));
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':')
                return make_error(errc::invalid_argument, "URL has a broken port: " + std::string(url));
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos || std::stoi(std::string(port)) < 1 ||
        std::stoi(std::string(port)) > 65535)
        return make_error(errc::invalid_argument, "URL has a broken host or port: " + std::string(url));
    out.host = std::string(host);
    out.port = std::string(port);
    return out;
}

bool is_loopback_host(std::string_view host) {
    if (host == "localhost" || host == "::1") return true;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(std::string(host), ec);
    return !ec && address.is_loopback();
}

std::string_view http_response::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

struct http_client::connection {
    explicit connection(asio::any_io_executor ex) : plain(std::move(ex)) {}
    beast::tcp_stream plain;                                  // the socket, for http
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;  // for https: owns the socket instead
    beast::flat_buffer buffer;
    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : plain; }
};

http_client::http_client(asio::any_io_executor ex, client_options options)
    : executor_(std::move(ex)), options_(std::move(options)) {
    tls_ = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1);
    tls_->set_default_verify_paths();
    tls_->set_verify_mode(asio::ssl::verify_peer);
    if (!options_.ca_file.empty()) {
        boost::system::error_code ec;
        tls_->load_verify_file(options_.ca_file, ec);
        if (ec) throw std::runtime_error("cannot load CA file " + options_.ca_file + ": " + ec.message());
    }
    if (!options_.client_cert_file.empty() || !options_.client_key_file.empty()) {
        boost::system::error_code ec;
        tls_->use_certificate_chain_file(options_.client_cert_file, ec);
        if (ec)
            throw std::runtime_error("cannot load client certificate " + options_.client_cert_file + ": " +
                                     ec.message());
        tls_->use_private_key_file(options_.client_key_file, asio::ssl::context::pem, ec);
        if (ec)
            throw std::runtime_error("cannot load client key " + options_.client_key_file + ": " +
                                     ec.message());
    }
}

http_client::~http_client() = default;

void http_client::close_idle() {
    idle_.clear();
}

using request_type = http::request<http::string_body>;

namespace {

// Reads one answer into parser, its status and headers into out.response (the body stays in the parser).
// retry: a reused connection turned out closed before any of the answer arrived.
template <class Stream, class Parser>
asio::awaitable<void> read_answer(Stream& stream, beast::flat_buffer& buffer, Parser& parser,
                                  const std::string& where, std::uint64_t limit, bool reused, exchange& out,
                                  bool& retry) {
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (rec) {
        if (reused && read == 0 &&
            (rec == http::error::end_of_stream || rec == asio::error::connection_reset ||
             rec == asio::error::eof || rec == asio::ssl::error::stream_truncated)) {
            out.sent = false;
            retry = true;
            co_return;
        }
        out.error = rec == beast::error::timeout ? "no answer from " + where + " in time"
                    : rec == http::error::body_limit
                        ? "answer from " + where + " exceeds " + std::to_string(limit) + " bytes"
                        : "cannot read answer from " + where + ": " + rec.message();
        co_return;
    }
    const auto& msg = parser.get();
    http_response res;
    res.status = static_cast<int>(msg.result_int());
    for (const auto& h : msg) res.headers.emplace_back(std::string(h.name_string()), std::string(h.value()));
    out.response = std::move(res);
}

// The first max_bytes of a file (an error answer that was meant to be a download).
std::string read_prefix(const std::string& path, std::size_t max_bytes) {
    std::string out(max_bytes, '\0');
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return {};
    out.resize(std::fread(out.data(), 1, out.size(), f));
    std::fclose(f);
    return out;
}

// One request and its answer on an open connection; the answer's body in memory, or in the request's
// save_to file. retry: as read_answer.
template <class Stream>
asio::awaitable<void> exchange_on(Stream& stream, beast::flat_buffer& buffer, const request_type& req,
                                  const outbound_request& request, const client_options& options, bool reused,
                                  exchange& out, bool& retry) {
    const std::string where = std::string(req[http::field::host]);
    beast::get_lowest_layer(stream).expires_after(options.exchange_timeout);
    auto [wec, written] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
    (void)written;
    if (wec) {
        if (reused) {
            retry = true;
            co_return;
        }
        out.sent = true;  // part of it may have reached the server
        out.error = "cannot send to " + where + ": " + wec.message();
        co_return;
    }
    out.sent = true;
    if (request.save_to.empty()) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(options.max_body_bytes);
        co_await read_answer(stream, buffer, parser, where, options.max_body_bytes, reused, out, retry);
        if (out.response) out.response->body = std::move(parser.get().body());
        co_return;
    }
    http::response_parser<http::file_body> parser;
    parser.body_limit(request.max_saved_bytes);
    beast::error_code fec;
    parser.get().body().open(request.save_to.c_str(), beast::file_mode::write, fec);
    if (fec) {
        out.error = "cannot write " + request.save_to + ": " + fec.message();
        co_return;
    }
    co_await read_answer(stream, buffer, parser, where, request.max_saved_bytes, reused, out, retry);
    parser.get().body().close();
    if (out.response && (out.response->status < 200 || out.response->status > 299))
        out.response->body = read_prefix(request.save_to, options.max_body_bytes);
}

}  // namespace

asio::awaitable<exchange> http_client::send(outbound_request request) {
    exchange out;
    auto parsed = parse_url(request.url);
    if (!parsed) {
        out.error = parsed.err().message;
        co_return out;
    }
    const url_parts url = std::move(*parsed);
    const bool tls = url.scheme == "https";
    const std::string key = url.scheme + "://" + url.host + ":" + url.port;
    const bool default_port = url.port == (tls ? "443" : "80");

    request_type req{http::string_to_verb(request.method), url.target, 11};
    if (req.method() == http::verb::unknown) {
        out.error = "unknown HTTP method " + request.method;
        co_return out;
    }
    req.set(http::field::host, default_port ? url.host : url.host + ":" + url.port);
    req.set(http::field::user_agent, options_.user_agent);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    req.body() = std::move(request.body);  // the rest of request (save_to) is still read below
    req.keep_alive(true);
    req.prepare_payload();

    // A reused connection may have been closed by the server while idle; then one fresh attempt.
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::unique_ptr<connection> conn;
        auto& idle = idle_[key];  // used before the first suspension only: close_idle() may clear the map
        // The retry always opens a fresh connection: the other idle ones are as old as the dead one.
        const bool reused = attempt == 0 && !idle.empty();
        if (reused) {
            conn = std::move(idle.back());
            idle.pop_back();
        } else {
            conn = std::make_unique<connection>(executor_);
            tcp::resolver resolver(executor_);
            auto [rec, endpoints] =
                co_await resolver.async_resolve(url.host, url.port, asio::as_tuple(asio::use_awaitable));
            if (rec) {
                out.error = "cannot resolve " + url.host + ": " + rec.message();
                co_return out;
            }
            conn->plain.expires_after(options_.connect_timeout);
            auto [cec, endpoint] =
                co_await conn->plain.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
            (void)endpoint;
            if (cec) {
                out.error = "cannot connect to " + key + ": " + cec.message();
                co_return out;  // sent stays false: nothing left this machine
            }
            if (tls) {
                conn->tls.emplace(std::move(conn->plain), *tls_);
                // SNI, and the certificate must name the host.
                if (!SSL_set_tlsext_host_name(conn->tls->native_handle(), url.host.c_str())) {
                    out.error = "cannot set TLS server name " + url.host;
                    co_return out;
                }
                conn->tls->set_verify_callback(asio::ssl::host_name_verification(url.host));
                conn->lowest().expires_after(options_.connect_timeout);
                auto [hec] = co_await conn->tls->async_handshake(asio::ssl::stream_base::client,
                                                                 asio::as_tuple(asio::use_awaitable));
                if (hec) {
                    // Nothing of the request was sent: a failed handshake is as safe to retry as a refused
                    // connect.
                    out.error = "TLS handshake with " + key + " failed: " + hec.message();
                    co_return out;
                }
            }
        }

        bool retry = false;
        if (conn->tls)
            co_await exchange_on(*conn->tls, conn->buffer, req, request, options_, reused, out, retry);
        else
            co_await exchange_on(conn->plain, conn->buffer, req, request, options_, reused, out, retry);
        if (retry) {
            idle_[key].clear();  // the server closed them while idle; each would fail the same way
            continue;
        }
        if (out.response) {
            const bool keep_alive = !iequals(out.response->header("Connection"), "close");
            if (auto& pool = idle_[key]; keep_alive && pool.size() < options_.max_idle_per_host) {
                conn->lowest().expires_never();
                pool.push_back(std::move(conn));
            }
        }
        co_return out;
    }
    out.error = "connection to " + key + " closed before an answer";
    co_return out;
}

}  // namespace wxrecon::net
