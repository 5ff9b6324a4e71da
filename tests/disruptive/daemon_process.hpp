// The real wxrecond binary in a child process, and signed notifications to
// send it: shared by the tests that run the binary.
#pragma once

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/time.hpp"
#include "protocol/v3.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {

using namespace std::chrono_literals;

// Signed with the fixture's WeChat Pay key unless `signer` is given.
inline protocol::v3::signed_notification payment_notification(const merchant_fixture& m,
                                                              const std::string& out_trade_no,
                                                              const std::string& txid,
                                                              const crypto::private_key* signer = nullptr) {
    domain::payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = domain::trade_state::success;
    p.appid = test_appid;
    p.transaction_id = txid;
    p.amount_total = 100;
    p.payer_total = 100;
    p.payer_openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
    p.success_time = std::time(nullptr) * 1'000'000LL;
    protocol::v3::notification_spec spec{"EV-" + txid,
                                         format_rfc3339(std::time(nullptr)),
                                         "TRANSACTION.SUCCESS",
                                         "支付成功",
                                         "transaction",
                                         "transaction",
                                         protocol::v3::transaction_json(test_mchid, p)};
    return *protocol::v3::make_notification(spec, m.apiv3_key, signer ? *signer : m.wechatpay_key,
                                            test_pub_key_id, std::time(nullptr));
}

inline int send(unsigned short port, const protocol::v3::signed_notification& n) {
    try {
        return http_post(port, std::string("/wxpay/v3/notify/") + test_mchid,
                         {{"Wechatpay-Timestamp", n.timestamp},
                          {"Wechatpay-Nonce", n.nonce},
                          {"Wechatpay-Signature", n.signature},
                          {"Wechatpay-Serial", n.serial}},
                         n.body)
            .status;
    } catch (const std::exception&) {
        return 0;  // connection refused or reset
    }
}

inline unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// The real binary on fixed ports, configured for the fixture's merchant.
class daemon_process {
public:
    // extra_toml is appended to the generated configuration (sections that make_config leaves out).
    daemon_process(const merchant_fixture& m, const std::string& database_url,
                   const std::string& extra_toml = {})
        : port_(free_port()), admin_(free_port()) {
        make_config(m, database_url);  // writes wxrecond.toml next to the keys; pin its listeners
        {
            std::ifstream in(m.dir / "wxrecond.toml");
            toml_.assign(std::istreambuf_iterator<char>(in), {});
        }
        toml_ += extra_toml;
        config_ = (m.dir / "wxrecond.toml").string();
        write_config();
        stderr_path_ = (m.dir / "wxrecond.stderr").string();
    }
    ~daemon_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    // Starts the binary with `env` added to the environment and `args` before "serve"; its stderr goes to
    // stderr_path(). Returns once /readyz answers 200.
    // A port found free may be taken by another test's connection before wxrecond binds it: then it is
    // started again on other ports (port() says which).
    bool start(const std::map<std::string, std::string>& env = {},
               const std::vector<std::string>& args = {}) {
        for (int attempt = 0; attempt < 3; ++attempt) {
            const auto logged_before = stderr_text().size();
            if (start_once(env, args)) return true;
            if (pid_ > 0 || stderr_text().find("Address already in use", logged_before) == std::string::npos)
                return false;
            port_ = free_port();
            admin_ = free_port();
            write_config();
        }
        return false;
    }

private:
    void write_config() {
        std::string toml = toml_;
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port_));
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(admin_));
        std::ofstream(config_, std::ios::trunc) << toml;
    }

    // One start: true once /readyz answers 200; false if it exits first (pid_ is then -1) or never does.
    bool start_once(const std::map<std::string, std::string>& env, const std::vector<std::string>& args) {
        // Everything the child needs is prepared before fork: the parent has threads.
        std::vector<std::string> argv_text = {WXRECOND_PATH, "--config", config_};
        argv_text.insert(argv_text.end(), args.begin(), args.end());
        argv_text.push_back("serve");
        std::vector<char*> argv;
        for (auto& a : argv_text) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> env_text;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string entry = *e;
            if (!env.contains(entry.substr(0, entry.find('=')))) env_text.push_back(entry);
        }
        for (const auto& [k, v] : env) env_text.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : env_text) envp.push_back(e.data());
        envp.push_back(nullptr);
        const int log = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        pid_ = ::fork();
        if (pid_ == 0) {
            if (log >= 0) ::dup2(log, STDERR_FILENO);
            ::execve(WXRECOND_PATH, argv.data(), envp.data());
            ::_exit(127);
        }
        if (log >= 0) ::close(log);
        for (int i = 0; i < 200; ++i) {
            try {
                if (http_get(admin_, "/readyz").status == 200) return true;
            } catch (const std::exception&) {
            }
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

public:
    // Sends sig and returns the exit status (or 128 + signal).
    int stop(int sig) {
        ::kill(pid_, sig);
        int wstatus = 0;
        ::waitpid(pid_, &wstatus, 0);
        pid_ = -1;
        return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    }
    void signal(int sig) { ::kill(pid_, sig); }
    unsigned short port() const { return port_; }
    unsigned short admin_port() const { return admin_; }
    pid_t pid() const { return pid_; }
    std::string stderr_text() const {
        std::ifstream in(stderr_path_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

private:
    unsigned short port_, admin_;
    std::string toml_;  // the configuration with its two listeners at 127.0.0.1:0
    std::string config_;
    std::string stderr_path_;
    pid_t pid_ = -1;
};

}  // namespace wxrecon::testing
