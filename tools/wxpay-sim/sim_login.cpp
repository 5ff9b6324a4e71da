// The mini-program login: /sim/login-code hands out a js_code for a user, as
// wx.login would in the mini-program, and /sns/jscode2session exchanges it,
// once, for the user's openid. Both ends live here, beside the codes they share.
#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;

asio::awaitable<reply> simulator::handle_login(inbound_request& req) {
    const std::string appid = query_param(req.query(), "appid");
    const std::string secret = query_param(req.query(), "secret");
    const std::string code = query_param(req.query(), "js_code");
    auto fail = [](int errcode, std::string_view msg) {
        return json_reply(200, json_object().add("errcode", errcode).add("errmsg", msg).str());
    };
    const sim_merchant* m = nullptr;
    for (const auto& k : keys_.merchants)
        if (k.appid == appid) m = &k;
    if (m == nullptr) co_return fail(40013, "invalid appid");
    if (!constant_time_equal(secret, m->app_secret)) co_return fail(40125, "invalid appsecret");
    if (query_param(req.query(), "grant_type") != "authorization_code")
        co_return fail(40002, "invalid grant_type");
    const auto it = login_codes_.find(appid + "\x1f" + code);
    if (it == login_codes_.end()) co_return fail(40029, "invalid code");
    if (it->second.second) co_return fail(40163, "code been used");
    it->second.second = true;
    co_return json_reply(200, json_object()
                                  .add("openid", it->second.first)
                                  .add("session_key", base64_encode(crypto::random_bytes(16)))
                                  .str());
}

reply simulator::control_login_code(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const std::string appid = j.str("appid").value_or("");
    bool known = false;
    for (const auto& k : keys_.merchants) known = known || k.appid == appid;
    if (!known) return control_error(404, "unknown appid");
    if (login_codes_.size() >= 100'000)
        login_codes_.clear();  // codes live five minutes at WeChat; keep it bounded
    const std::string code = crypto::random_alnum(32);
    const std::string user = j.str("user").value_or(code);
    const std::string openid = "o" + base64_encode(crypto::sha256(appid + "\x1f" + user)).substr(0, 27);
    std::string safe_openid = openid;
    for (auto& c : safe_openid)
        if (c == '+' || c == '/') c = '_';
    login_codes_[appid + "\x1f" + code] = {safe_openid, false};
    return json_reply(200, json_object().add("code", code).add("openid", safe_openid).str());
}

}  // namespace wxrecon::sim
