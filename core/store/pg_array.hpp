// A one-dimensional PostgreSQL array bound as one parameter in the binary wire format, for the
// set-based statements of core/store (unnest of several arrays of equal length).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <pqxx/pqxx>

namespace wxrecon::store {

// libpqxx 6 binds no arrays. A text literal made the server's array_in read every character of the evidence,
// about 2 KB a fact (14 % of PostgreSQL's CPU in a notification run), after this side had escaped each one.
class pg_array {
public:
    enum class element : std::uint32_t { boolean = 16, int8 = 20, text = 25 };  // the element types' oids
    explicit pg_array(element type = element::text) : type_(type) {}

    void add(std::string_view v) {
        expect(element::text);
        if (v.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
            throw std::length_error("array element too long");
        put32(static_cast<std::uint32_t>(v.size()));
        body_.append(v);
    }
    void add(const std::string& v) { add(std::string_view(v)); }
    void add(const char*) = delete;  // would otherwise be taken as a boolean
    void add(const std::optional<std::string>& v) { v ? add(std::string_view(*v)) : add_null(); }
    void add(std::int64_t v) {
        expect(element::int8);
        put32(8);
        const auto u = static_cast<std::uint64_t>(v);
        put32(static_cast<std::uint32_t>(u >> 32));
        put32(static_cast<std::uint32_t>(u));
    }
    void add(std::optional<std::int64_t> v) { v ? add(*v) : add_null(); }
    template <class T>
    void add(const std::optional<T>&) = delete;  // e.g. optional<bool> would convert to optional<int64_t>
    void add(bool v) {
        expect(element::boolean);
        put32(1);
        body_.push_back(v ? '\1' : '\0');
    }
    void add_null() {
        ++count_;
        has_null_ = true;
        append32(body_, 0xffffffffU);
    }
    // Header (dimensions, null flag, element type, length, lower bound 1), then each element's length and
    // bytes.
    pqxx::binarystring param() const {
        std::string out;
        out.reserve(20 + body_.size());
        append32(out, 1);
        append32(out, has_null_ ? 1 : 0);
        append32(out, static_cast<std::uint32_t>(type_));
        append32(out, static_cast<std::uint32_t>(count_));
        append32(out, 1);
        out += body_;
        return pqxx::binarystring(out.data(), out.size());
    }
    bool empty() const { return count_ == 0; }

private:
    static void append32(std::string& out, std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
    }
    void put32(std::uint32_t v) { append32(body_, v); }
    void expect(element type) {
        if (type != type_) throw std::logic_error("pg_array: element of another type added");
        ++count_;
    }
    element type_;
    std::size_t count_ = 0;
    bool has_null_ = false;
    std::string body_;
};

}  // namespace wxrecon::store
