// Planted for tests/cli/layers_test.sh: the pure core may not do I/O.
#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
