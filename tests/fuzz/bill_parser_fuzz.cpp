// libFuzzer target for the streaming bill parser (core/protocol/bill). Whatever the bytes, the parser must
// not crash, hang or grow without bound, and it must not depend on how the bytes are cut: the same input
// fed whole and fed in pieces (cut where the input's first byte says) gives the same result, error
// message included.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/bill.hpp"

namespace {

using namespace wxrecon;
namespace bill = protocol::bill;

// The outcome as text: totals or the error, and how many rows came out.
std::string outcome(std::string_view data, std::size_t piece, std::optional<bill::bill_kind> kind) {
    std::int64_t rows = 0;
    bill::row_handlers handlers;
    handlers.trade = [&rows](const bill::trade_row&) -> status {
        ++rows;
        return ok;
    };
    handlers.fundflow = [&rows](const bill::fundflow_row&) -> status {
        ++rows;
        return ok;
    };
    bill::parser_limits limits;
    limits.max_line_bytes = 4096;  // the fuzzer's inputs are small: let it reach the limit
    bill::bill_parser parser(handlers, kind, limits);
    for (std::size_t at = 0; at < data.size(); at += piece) {
        if (auto fed = parser.feed(data.substr(at, piece)); !fed)
            return "error " + fed.err().message + " rows " + std::to_string(rows);
    }
    auto totals = parser.finish();
    if (!totals) return "error " + totals.err().message + " rows " + std::to_string(rows);
    return std::string("ok ") + bill::totals_json(*totals) + " rows " + std::to_string(rows);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t piece = 1 + bytes[0] % 37;
    const std::optional<bill::bill_kind> kind = bytes[0] & 0x80
                                                    ? std::optional<bill::bill_kind>{}
                                                    : std::optional<bill::bill_kind>{bill::bill_kind::trade};
    const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    const std::string whole = outcome(data, data.size() + 1, kind);
    const std::string pieces = outcome(data, piece, kind);
    if (whole != pieces) {
        std::fprintf(stderr, "fed whole: %s\nfed in pieces of %zu: %s\n", whole.c_str(), piece,
                     pieces.c_str());
        std::abort();
    }
    return 0;
}
