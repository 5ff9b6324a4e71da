// An HTTP/1.1 listener on Boost.Beast and C++20 coroutines: keep-alive,
// bounded header and body sizes, deadlines against slow and idle clients, a
// connection cap that makes room by closing idle connections, a cap per client
// address, and a graceful shutdown that drains in-flight requests.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/http_message.hpp"
#include "net/http_request_head.hpp"

namespace boost::asio::ssl {
class context;
}

namespace wxrecon::net {

using http_handler = std::function<boost::asio::awaitable<reply>(inbound_request&)>;
// The reply to a request whose body exceeds the limit (413), given its target.
using too_large_handler = std::function<reply(std::string_view target)>;

// What the server reports, for its user to count under names of its own choosing. Either may be empty.
struct http_observer {
    std::function<void(int status)> answered;              // a reply was written, with its HTTP status
    std::function<void(std::string_view reason)> refused;  // "max_connections" or "per_address"
    std::function<void()> evicted;  // an idle connection was closed to make room for a new one
    std::function<void(std::exception_ptr)> escaped;  // an exception escaped a session or the accept loop
};

struct http_limits {
    std::size_t max_body_bytes = default_max_body_bytes;
    std::size_t max_header_bytes = default_max_header_bytes;
    std::chrono::milliseconds read_timeout{10000};   // a whole request, from its first byte
    std::chrono::milliseconds header_timeout{5000};  // its header (and a TLS handshake), from the first byte
    std::chrono::milliseconds idle_timeout{10000};   // a connection waiting for its next request
    std::size_t max_connections = 1024;
    std::size_t max_connections_per_address = 256;
};

class http_server {
public:
    // With a TLS context every connection starts with a TLS handshake (HTTPS); without one, plain HTTP.
    http_server(boost::asio::any_io_executor ex, const boost::asio::ip::tcp::endpoint& endpoint,
                http_limits limits, http_handler handler, too_large_handler too_large, std::string name,
                http_observer observer = {}, std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
    ~http_server();

    boost::asio::ip::tcp::endpoint local_endpoint() const;
    void start();
    // Stops accepting, closes idle connections, lets in-flight requests finish (and their replies be
    // written) for up to grace, then closes whatever is left. Must run on the server's executor.
    boost::asio::awaitable<void> shutdown(std::chrono::milliseconds grace);

private:
    struct session_state;
    boost::asio::awaitable<void> accept_loop();
    std::function<void(std::exception_ptr)> escape_reporter() const;
    bool make_room();
    boost::asio::awaitable<void> run_session(boost::asio::ip::tcp::socket socket, std::string remote);
    template <class Stream>
    boost::asio::awaitable<void> serve(Stream& stream, const std::string& remote, session_state& state,
                                       const std::string& client_subject);

    boost::asio::any_io_executor executor_;
    boost::asio::ip::tcp::acceptor acceptor_;
    http_limits limits_;
    http_handler handler_;
    too_large_handler too_large_;
    std::string name_;  // in logs and generated request ids
    http_observer observer_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    bool stopping_ = false;
    std::uint64_t requests_served_ = 0;
    // Touched only on executor_, which is single-threaded.
    std::list<session_state*> sessions_;
    std::unordered_map<std::string, std::size_t> connections_by_address_;
};

// "host:port" -> endpoint; "[::1]:80" for IPv6. Throws std::invalid_argument on a bad value.
boost::asio::ip::tcp::endpoint parse_endpoint(const std::string& listen);

}  // namespace wxrecon::net
