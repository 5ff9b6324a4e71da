// GET /api/v1/orders against a real PostgreSQL (docs/interfaces.md §4.5): newest first, filters, and a
// cursor that returns every order exactly once while new orders keep arriving.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <set>

#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

const std::string listing_token = "test-token-0123456789abcdef";

struct page {
    int status = 0;
    std::vector<std::string> orders;  // out_trade_no, in the order given
    std::string next_cursor;          // "" when null
    std::string body;
};

class OrderList : public ::testing::Test {
protected:
    void SetUp() override {
        merchant_ = make_merchant_fixture();
        std::ofstream(merchant_->dir / "api.token", std::ios::binary) << listing_token << "\n";
        auto cfg = make_config(*merchant_, db_.url());
        cfg.api = config::api_config{merchant_->dir / "api.token", std::nullopt};
        daemon_ = std::make_unique<running_daemon>(std::move(cfg));
    }

    page list(const std::string& query) {
        const auto r = http_request(daemon_->app().api_port(), "GET", "/api/v1/orders" + query,
                                    {{"Authorization", "Bearer " + listing_token}});
        page p{r.status, {}, {}, r.body};
        if (r.status != 200) return p;
        simdjson::dom::parser parser;
        const simdjson::padded_string body(r.body);
        const auto doc = parser.parse(body);
        for (const auto o : doc["orders"].get_array())
            p.orders.emplace_back(o["out_trade_no"].get_string().value());
        if (!doc["next_cursor"].is_null())
            p.next_cursor = std::string(doc["next_cursor"].get_string().value());
        return p;
    }

    // `count` orders numbered from `first`, in groups of 7 sharing one creation time (ties the cursor must
    // break), each group a second later than the one before, starting at `start`.
    void insert_orders(int first, int count, const std::string& start,
                       const std::string& mchid = test_mchid) {
        db_.exec(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, state)"
            " SELECT '" +
            mchid +
            "', 'L-' || lpad(g::text, 5, '0'), 100 + g,"
            " timestamptz '" +
            start + "' + ((g - " + std::to_string(first) +
            ") / 7) * interval '1 second',"
            " CASE WHEN g % 3 = 0 THEN 'SUCCESS' ELSE 'NOTPAY' END"
            " FROM generate_series(" +
            std::to_string(first) + ", " + std::to_string(first + count - 1) + ") g");
    }

    scratch_database db_;
    std::unique_ptr<merchant_fixture> merchant_;
    std::unique_ptr<running_daemon> daemon_;
};

TEST_F(OrderList, EveryOrderExactlyOnceNewestFirstWhileOrdersArrive) {
    insert_orders(1, 1000, "2026-11-30 10:00:00+08");
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
        const auto p = list("?limit=37" + (cursor.empty() ? "" : "&cursor=" + cursor));
        ASSERT_EQ(p.status, 200) << p.body;
        seen.insert(seen.end(), p.orders.begin(), p.orders.end());
        cursor = p.next_cursor;
        // New orders keep arriving, newer than any listed: they never shift the pages that follow.
        if (++pages <= 10) insert_orders(10000 + pages * 30, 30, "2026-12-01 10:00:00+08");
    } while (!cursor.empty());
    // Every order present at the start is seen once, newest first, ties broken by out_trade_no descending;
    // none of those that arrived meanwhile.
    std::string listed;
    for (const auto& no : seen) listed += (listed.empty() ? "" : ",") + no;
    EXPECT_EQ(listed, db_.scalar("SELECT string_agg(out_trade_no, ',' ORDER BY created_at DESC, mchid DESC,"
                                 " out_trade_no DESC) FROM wxrecon.orders WHERE out_trade_no < 'L-10000'"));
    EXPECT_EQ(seen.size(), 1000u);
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "no order twice";
    EXPECT_EQ(pages, 28) << "1,000 orders in pages of 37";
}

TEST_F(OrderList, FiltersByMerchantStateAndCreationTime) {
    insert_orders(1, 70, "2026-11-30 10:00:00+08");                  // 10 seconds of orders
    insert_orders(100, 14, "2026-11-30 10:00:00+08", "1900000999");  // another merchant
    EXPECT_EQ(list("").orders.size(), 50u) << "50 by default";
    EXPECT_EQ(list("?limit=500").orders.size(), 84u);
    EXPECT_EQ(list("?mchid=1900000999&limit=500").orders.size(), 14u);
    const auto paid = list("?state=SUCCESS&mchid=" + std::string(test_mchid) + "&limit=500");
    EXPECT_EQ(paid.orders.size(), 23u) << paid.body;  // every third of 1..70
    // since inclusive, until exclusive; "+08:00" may be written as it is or as %2B08:00.
    const auto window = list("?mchid=" + std::string(test_mchid) +
                             "&since=2026-11-30T10:00:02+08:00&until=2026-11-30T10:00:04%2B08:00&limit=500");
    ASSERT_EQ(window.status, 200) << window.body;
    EXPECT_EQ(window.orders.size(), 14u) << window.body;
    EXPECT_EQ(window.orders.front(), "L-00028");
    EXPECT_EQ(window.orders.back(), "L-00015");
    // A cursor with filters: the next page of the same filtered list.
    const auto first = list("?mchid=" + std::string(test_mchid) + "&limit=40");
    const auto second = list("?mchid=" + std::string(test_mchid) + "&limit=40&cursor=" + first.next_cursor);
    EXPECT_EQ(first.orders.size() + second.orders.size(), 70u);
    EXPECT_TRUE(second.next_cursor.empty());
}

TEST_F(OrderList, BadParametersAreNamed) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"?limit=0", "limit"},        {"?limit=501", "limit"},       {"?limit=ten", "limit"},
        {"?state=PAID", "state"},     {"?since=yesterday", "since"}, {"?until=2026-11-30", "until"},
        {"?cursor=bm9wZQ", "cursor"}, {"?cursor=%%", "%"},           {"?colour=red", "colour"}};
    for (const auto& [query, named] : cases) {
        const auto p = list(query);
        EXPECT_EQ(p.status, 400) << query;
        EXPECT_NE(p.body.find(named), std::string::npos) << query << " -> " << p.body;
    }
    EXPECT_EQ(http_request(daemon_->app().api_port(), "GET", "/api/v1/orders").status, 401);
    EXPECT_EQ(http_request(daemon_->app().api_port(), "DELETE", "/api/v1/orders",
                           {{"Authorization", "Bearer " + listing_token}})
                  .status,
              405);
}

}  // namespace
}  // namespace wxrecon::testing
