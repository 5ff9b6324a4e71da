// What escapes a coroutine nobody awaits is logged and counted by component, never lost.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <stdexcept>

#include "workflow/escapes.hpp"

namespace wxrecon::workflow {
namespace {

boost::asio::awaitable<void> fails() {
    throw std::runtime_error("cannot load CA file /etc/ca.pem");
    co_return;
}

boost::asio::awaitable<void> ends() {
    co_return;
}

TEST(Escapes, WhatEscapesADetachedCoroutineIsCountedByComponent) {
    auto m = std::make_shared<metrics>();
    boost::asio::io_context io;
    boost::asio::co_spawn(io, ends(), report_escapes(m, "certificate_refresher"));
    io.run();
    io.restart();
    EXPECT_EQ(m->render().find("wxrecon_internal_errors_total"), std::string::npos)
        << "a normal end counts nothing";
    boost::asio::co_spawn(io, fails(), report_escapes(m, "certificate_refresher"));
    io.run();
    report_escapes(m, "certificate_refresher")(std::make_exception_ptr(42));  // not a std::exception
    EXPECT_NE(m->render().find("wxrecon_internal_errors_total{component=\"certificate_refresher\"} 2"),
              std::string::npos)
        << m->render();
}

}  // namespace
}  // namespace wxrecon::workflow
