#include "net/http_server.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "base/encoding.hpp"
#include "net/http_request_head.hpp"

namespace wxrecon::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct http_server::session_state {
    enum class phase {
        idle,     // waiting for the first byte of the next request
        reading,  // a TLS handshake or a request arriving
        busy,     // a request being handled or its reply written
    };
    beast::tcp_stream* stream = nullptr;
    phase now = phase::reading;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();  // in this phase
    bool evicted = false;

    void enter(phase p) {
        now = p;
        since = std::chrono::steady_clock::now();
    }
};

tcp::endpoint parse_endpoint(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("listen address lacks a port: " + listen);
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const int port = std::stoi(listen.substr(colon + 1));
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) throw std::invalid_argument("listen address is not an IP address: " + listen);
    return {address, static_cast<unsigned short>(port)};
}

http_server::http_server(asio::any_io_executor ex, const tcp::endpoint& endpoint, http_limits limits,
                         http_handler handler, too_large_handler too_large, std::string name,
                         http_observer observer, std::shared_ptr<asio::ssl::context> tls)
    : executor_(ex),
      acceptor_(ex),
      limits_(limits),
      handler_(std::move(handler)),
      too_large_(std::move(too_large)),
      name_(std::move(name)),
      observer_(std::move(observer)),
      tls_(std::move(tls)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

http_server::~http_server() = default;

tcp::endpoint http_server::local_endpoint() const {
    return acceptor_.local_endpoint();
}

// A copy of the observer's hook: a session may end after the server object is gone.
std::function<void(std::exception_ptr)> http_server::escape_reporter() const {
    return [report = observer_.escaped](std::exception_ptr e) {
        if (e && report) report(e);
    };
}

void http_server::start() {
    asio::co_spawn(executor_, accept_loop(), escape_reporter());
}

asio::awaitable<void> http_server::accept_loop() {
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (stopping_ || ec == asio::error::operation_aborted) break;
            spdlog::warn("http: accept failed listener={} error={}", name_, log_quote(ec.message()));
            continue;
        }
        boost::system::error_code ec_remote;
        const auto peer = socket.remote_endpoint(ec_remote);
        std::string remote = ec_remote ? std::string() : peer.address().to_string();
        // Refused at once rather than queued: work we cannot bound is not accepted.
        std::string_view refusal;
        if (connections_by_address_[remote] >= limits_.max_connections_per_address)
            refusal = "per_address";
        else if (sessions_.size() >= limits_.max_connections && !make_room())
            refusal = "max_connections";
        if (!refusal.empty()) {
            if (observer_.refused) observer_.refused(refusal);
            if (connections_by_address_[remote] == 0) connections_by_address_.erase(remote);
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        ++connections_by_address_[remote];
        asio::co_spawn(executor_, run_session(std::move(socket), std::move(remote)), escape_reporter());
    }
}

// At the cap a connection that is not using its place gives way: the one idle longest, or failing that the
// one slowest to send its request (a genuine client sends it at once). Held connections, however many
// addresses they come from, cannot lock out a client with a request to make. False when all are busy.
bool http_server::make_room() {
    using phase = session_state::phase;
    session_state* victim = nullptr;
    const auto rank = [](const session_state* s) {
        return std::pair(s->now == phase::idle ? 0 : 1, s->since);
    };
    for (auto* s : sessions_)
        if (s->now != phase::busy && !s->evicted && (victim == nullptr || rank(s) < rank(victim))) victim = s;
    if (victim == nullptr) return false;
    // Cancelled, not closed: a request that completed meanwhile is still answered, then the connection ends.
    victim->evicted = true;
    boost::system::error_code ignored;
    victim->stream->socket().cancel(ignored);
    if (observer_.evicted) observer_.evicted();
    return true;
}

namespace {

http::response<http::string_body> to_response(const reply& r, unsigned version, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.body() = r.body;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

// Unique across restarts and instances without coordination: a random process prefix and a counter.
std::string make_request_id(std::string_view listener, std::uint64_t n) {
    static const std::string process_prefix = [] {
        std::random_device rd;
        char buf[16];
        std::snprintf(buf, sizeof buf, "%08x", rd());
        return std::string(buf);
    }();
    return process_prefix + "-" + std::string(listener) + "-" + std::to_string(n);
}

// The common name of a client certificate the handshake verified; empty when none was presented. A server
// context that asks for client certificates (verify_peer) fails the handshake on one it cannot verify.
std::string verified_client_subject(beast::ssl_stream<beast::tcp_stream>& stream) {
    SSL* ssl = stream.native_handle();
    X509* cert = SSL_get_peer_certificate(ssl);
    if (cert == nullptr) return {};
    std::string subject;
    if (SSL_get_verify_result(ssl) == X509_V_OK) {
        char name[256] = {};
        const int n =
            X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
        if (n > 0) subject.assign(name, static_cast<std::size_t>(n));
    }
    X509_free(cert);
    return subject;
}

}  // namespace

asio::awaitable<void> http_server::run_session(tcp::socket socket, std::string remote) {
    session_state state;
    sessions_.push_back(&state);
    const auto self = std::prev(sessions_.end());
    try {
        if (tls_) {
            beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls_);
            state.stream = &beast::get_lowest_layer(stream);
            state.stream->expires_after(std::min(limits_.header_timeout, limits_.read_timeout));
            auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                                         asio::as_tuple(asio::use_awaitable));
            // Named: GCC 12 may destroy a temporary passed to a co_await twice.
            const std::string client_subject = hec ? std::string() : verified_client_subject(stream);
            if (!hec && !stopping_) co_await serve(stream, remote, state, client_subject);
            boost::system::error_code ignored;
            state.stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
            state.stream->socket().close(ignored);
        } else {
            beast::tcp_stream stream(std::move(socket));
            state.stream = &stream;
            const std::string no_client_subject;
            co_await serve(stream, remote, state, no_client_subject);
            boost::system::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            stream.socket().close(ignored);
        }
    } catch (...) {
        // A fault of ours (the handlers answer every failure they know): logged and counted by the observer.
        spdlog::warn("http: session failed listener={} remote={}", name_, remote);
        escape_reporter()(std::current_exception());
    }
    sessions_.erase(self);
    if (--connections_by_address_[remote] == 0) connections_by_address_.erase(remote);
}

template <class Stream>
asio::awaitable<void> http_server::serve(Stream& stream, const std::string& remote, session_state& state,
                                         const std::string& client_subject) {
    auto& lowest = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    while (!stopping_ && !state.evicted) {
        if (buffer.size() == 0) {  // between requests: wait for the next one's first byte
            state.enter(session_state::phase::idle);
            lowest.expires_after(limits_.idle_timeout);
            auto [iec, n] =
                co_await stream.async_read_some(buffer.prepare(4096), asio::as_tuple(asio::use_awaitable));
            state.enter(session_state::phase::reading);
            if (iec) break;  // closed, idle too long, or evicted
            buffer.commit(n);
        }
        // From its first byte a request has header_timeout for its header and read_timeout in all, however
        // slowly its bytes trickle in.
        const auto started = std::chrono::steady_clock::now();
        request_parser parser;
        limit_request(parser, limits_.max_header_bytes, limits_.max_body_bytes);
        lowest.expires_at(started + std::min(limits_.header_timeout, limits_.read_timeout));
        auto [ec, header_bytes] =
            co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
        (void)header_bytes;
        if (!ec && parser.chunked()) {
            // Fuzzing found Boost 1.74's chunked-body parser asserting on a final chunk split across reads;
            // WeChat Pay and the API's clients send Content-Length, so a chunked body is refused unread.
            state.enter(session_state::phase::busy);
            const auto res = to_response({411, "text/plain",
                                          "chunked request bodies are not accepted: send "
                                          "Content-Length\n"},
                                         11, false);
            if (observer_.answered) observer_.answered(411);
            lowest.expires_after(limits_.read_timeout);
            co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            break;
        }
        if (!ec) {
            lowest.expires_at(started + limits_.read_timeout);
            auto [bec, bytes] =
                co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            (void)bytes;
            ec = bec;
        }
        if (ec == http::error::body_limit) {
            state.enter(session_state::phase::busy);
            const std::string target(parser.get().target());
            const auto res = to_response(too_large_(target), parser.get().version(), false);
            if (observer_.answered) observer_.answered(413);
            lowest.expires_after(limits_.read_timeout);
            co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            break;
        }
        if (ec == http::error::header_limit) {
            state.enter(session_state::phase::busy);
            const auto res = to_response({431, "text/plain", "request header fields too large\n"}, 11, false);
            lowest.expires_after(limits_.read_timeout);
            co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            break;
        }
        if (ec) break;  // closed, timed out, or garbage: nothing was accepted, nothing to answer

        state.enter(session_state::phase::busy);
        auto& msg = parser.get();
        const bool wants_keep_alive = msg.keep_alive();
        const unsigned version = msg.version();
        inbound_request req = to_inbound(std::move(msg));
        req.remote_addr = remote;
        req.client_certificate_subject = client_subject;
        req.received = std::chrono::steady_clock::now();
        const std::string_view wechat_id = req.header("Request-ID");
        req.request_id = is_wechat_request_id(wechat_id) ? std::string(wechat_id)
                                                         : make_request_id(name_, ++requests_served_);
        lowest.expires_never();
        const reply r = co_await handler_(req);
        const bool keep_alive = wants_keep_alive && !stopping_ && !state.evicted;
        const auto res = to_response(r, version, keep_alive);
        if (observer_.answered) observer_.answered(r.status);
        lowest.expires_after(limits_.read_timeout);
        auto [wec, written] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        (void)written;
        state.enter(session_state::phase::reading);
        if (wec || !keep_alive) break;
    }
}

asio::awaitable<void> http_server::shutdown(std::chrono::milliseconds grace) {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    const auto give_up = std::chrono::steady_clock::now() + grace;
    asio::steady_timer timer(executor_);
    for (;;) {
        // Idle keep-alive connections are closed; busy ones finish their request first.
        for (auto* s : sessions_)
            if (s->now != session_state::phase::busy) s->stream->socket().cancel(ignored);
        if (sessions_.empty() || std::chrono::steady_clock::now() >= give_up) break;
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    for (auto* s : sessions_) s->stream->socket().close(ignored);
    // A session still waiting on the database ends when its transaction does (bounded by its deadline).
    const auto hard_stop = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!sessions_.empty() && std::chrono::steady_clock::now() < hard_stop) {
        timer.expires_after(std::chrono::milliseconds(5));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace wxrecon::net
