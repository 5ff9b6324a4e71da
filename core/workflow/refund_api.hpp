// POST /api/v1/refunds (docs/interfaces.md §4.4d): the application refunds a
// paid order. The request is checked against what was paid and stored before
// it is sent, so the same body again resends the identical request under the
// same out_refund_no (WeChat Pay refunds once per number) and never makes a
// second refund. An answer that does not say (timeout, 5xx, rate limit) is not
// a failure of the refund: it stays PROCESSING and the refund tracker finds out.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "base/http_message.hpp"
#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "store/db_pool.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::store {
class ledger;
}

namespace wxrecon::workflow {

class refund_api {
public:
    refund_api(const config::config& cfg, store::db_pool& pool, key_holder& keys, wechat_clients& clients,
               store::ledger& ledger, std::shared_ptr<metrics> m, std::string owner, wall_clock clock = {});

    boost::asio::awaitable<reply> create(const inbound_request& req);
    boost::asio::awaitable<reply> get(std::string mchid, std::string out_refund_no);

private:
    const config::config& cfg_;
    store::db_pool& pool_;
    key_holder& keys_;
    wechat_clients& clients_;
    store::ledger& ledger_;
    std::shared_ptr<metrics> metrics_;
    std::string owner_;  // holds the new refund's lease while the first attempt is on its way
    wall_clock clock_;
};

}  // namespace wxrecon::workflow
