#include "test_env.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <pqxx/pqxx>

#include "config/key_material.hpp"

namespace wxrecon::testing {

namespace fs = std::filesystem;

std::string read_text(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string());
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
        text.replace(pos, from.size(), to);
}

namespace {

// Older than this, a shared key folder is made again: certificate times stay close to the tests' clock.
constexpr auto shared_key_lifetime = std::chrono::hours(6);

// An exclusive flock on a file, released when it goes out of scope.
class folder_lock {
public:
    explicit folder_lock(const fs::path& file)
        : fd_(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) {
            if (fd_ >= 0) ::close(fd_);
            throw std::runtime_error("cannot lock " + file.string());
        }
    }
    ~folder_lock() { ::close(fd_); }
    folder_lock(const folder_lock&) = delete;
    folder_lock& operator=(const folder_lock&) = delete;

private:
    int fd_;
};

}  // namespace

fs::path shared_key_folder(const std::string& name, const std::function<void(const fs::path&)>& make) {
    const fs::path cache = WXRECON_TEST_KEY_CACHE;
    fs::create_directories(cache);
    const fs::path folder = cache / name;
    const folder_lock lock(cache / (name + ".lock"));
    std::error_code ec;
    const auto made = fs::last_write_time(folder / ".made", ec);
    if (ec || fs::file_time_type::clock::now() - made > shared_key_lifetime) {
        fs::remove_all(folder);
        fs::create_directories(folder);
        make(folder);
        std::ofstream(folder / ".made") << "";
    }
    return folder;
}

std::string base_database_url() {
    const char* url = std::getenv("WXRECON_TEST_PG_URL");
    if (url == nullptr || *url == '\0')
        throw std::runtime_error("WXRECON_TEST_PG_URL is not set: run the tests through scripts/test.sh");
    return url;
}

namespace {

std::string random_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::to_string(rng() % 1000000000000ULL);
}

std::string with_database(const std::string& url, const std::string& name) {
    const auto slash = url.rfind('/');
    return url.substr(0, slash + 1) + name;
}

void run(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
        throw std::runtime_error("failed: " + command);
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& p, const std::string& content) {
    std::ofstream out(p, std::ios::binary);
    out << content;
}

}  // namespace

scratch_database::scratch_database() : name_("wxrecon_test_" + random_suffix()) {
    pqxx::connection conn(base_database_url());
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE " + name_);
    url_ = with_database(base_database_url(), name_);
}

scratch_database::~scratch_database() {
    try {
        pqxx::connection conn(base_database_url());
        pqxx::nontransaction tx(conn);
        tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
}

std::string scratch_database::scalar(const std::string& sql) const {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    const auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
}

void scratch_database::exec(const std::string& sql) const {
    pqxx::connection conn(url_);
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
}

merchant_fixture::~merchant_fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
}

std::unique_ptr<merchant_fixture> make_merchant_fixture() {
    const fs::path shared = shared_key_folder("merchant", [](const fs::path& folder) {
        const std::string d = folder.string();
        run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + d + "/apiclient_key.pem");
        run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + d + "/wechatpay_key.pem");
        run("openssl pkey -in " + d + "/wechatpay_key.pem -pubout -out " + d + "/pub_key.pem");
        run("openssl req -x509 -new -key " + d +
            "/wechatpay_key.pem -subj '/CN=Tenpay.com sign' -days 30 -set_serial 0x" + test_platform_serial +
            " -out " + d + "/platform_cert.pem");
    });
    auto m = std::make_unique<merchant_fixture>();
    m->dir = fs::temp_directory_path() / ("wxrecon-keys-" + random_suffix());
    fs::copy(shared, m->dir, fs::copy_options::recursive);
    m->apiv3_key = crypto::random_alnum(32);
    m->apiv2_key = crypto::random_alnum(32);
    write_file(m->dir / "apiv3.key", m->apiv3_key + "\n");
    write_file(m->dir / "apiv2.key", m->apiv2_key);
    auto key = crypto::load_private_key_pem(read_file(m->dir / "wechatpay_key.pem"));
    if (!key) throw std::runtime_error(key.err().message);
    m->wechatpay_key = *key;
    return m;
}

config::config make_config(const merchant_fixture& m, const std::string& database_url) {
    const std::string toml = std::string("[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n") +
                             "[admin]\nlisten = \"127.0.0.1:0\"\n" + "[database]\nurl = \"" + database_url +
                             "\"\npool_size = 4\n" + "[[merchants]]\nmchid = \"" + test_mchid +
                             "\"\nappid = \"" + test_appid +
                             "\"\napi_version = \"v3\"\napi_base = \"http://127.0.0.1:1\"\n" +
                             "apiv3_key_file = \"apiv3.key\"\napiv2_key_file = \"apiv2.key\"\n" +
                             "merchant_private_key_file = \"apiclient_key.pem\"\n" +
                             "merchant_cert_serial = \"3775B6A45ACD588826D15E583A95F5DD12345678\"\n" +
                             "wechatpay_public_key_file = \"pub_key.pem\"\nwechatpay_public_key_id = \"" +
                             test_pub_key_id + "\"\n" + "platform_cert_files = [\"platform_cert.pem\"]\n";
    write_file(m.dir / "wxrecond.toml", toml);
    auto cfg = config::load_config(m.dir / "wxrecond.toml");
    if (!cfg) throw std::runtime_error(cfg.err().message);
    return *cfg;
}

running_daemon::running_daemon(config::config cfg) {
    auto keys = config::load_key_store(cfg, std::time(nullptr));
    if (!keys) throw std::runtime_error(keys.err().message);
    app_ = std::make_unique<daemon::application>(std::move(cfg),
                                                 std::make_shared<const config::key_store>(std::move(*keys)));
    app_->start();
    public_port_ = app_->public_port();
    admin_port_ = app_->admin_port();
    thread_ = std::thread([this] { app_->run(false); });
}

running_daemon::~running_daemon() {
    stop();
}

void running_daemon::stop() {
    if (!thread_.joinable()) return;
    app_->request_stop();
    thread_.join();
}

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

http_response exchange(unsigned short port, http::request<http::string_body> req,
                       const std::string& source_address = {}) {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    if (!source_address.empty()) {  // another loopback address: the server sees another client
        stream.socket().open(boost::asio::ip::tcp::v4());
        stream.socket().bind(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(source_address), 0));
    }
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    req.set(http::field::host, "127.0.0.1");
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 24);
    http::read(stream, buffer, parser);
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    http_response out{static_cast<int>(parser.get().result_int()), parser.get().body(), {}};
    for (const auto& h : parser.get())
        out.headers.emplace_back(std::string(h.name_string()), std::string(h.value()));
    return out;
}

}  // namespace

http_response http_post(unsigned short port, const std::string& target,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const std::string& body) {
    http::request<http::string_body> req{http::verb::post, target, 11};
    for (const auto& [k, v] : headers) req.insert(k, v);  // a header given twice is sent twice
    req.body() = body;
    return exchange(port, std::move(req));
}

std::string http_response::header(const std::string& name) const {
    for (const auto& [k, v] : headers)
        if (boost::beast::iequals(k, name)) return v;
    return {};
}

http_response http_request(unsigned short port, const std::string& method, const std::string& target,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           const std::string& body) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    for (const auto& [k, v] : headers) req.insert(k, v);  // a header given twice is sent twice
    req.body() = body;
    return exchange(port, std::move(req));
}

http_response http_request_from(const std::string& source_address, unsigned short port,
                                const std::string& method, const std::string& target,
                                const std::vector<std::pair<std::string, std::string>>& headers,
                                const std::string& body) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    for (const auto& [k, v] : headers) req.insert(k, v);  // a header given twice is sent twice
    req.body() = body;
    return exchange(port, std::move(req), source_address);
}

http_response http_get(unsigned short port, const std::string& target) {
    return exchange(port, http::request<http::string_body>{http::verb::get, target, 11});
}

}  // namespace wxrecon::testing
