// Planted for tests/cli/layers_test.sh: the sender stands on the pure core alone.
#include "protocol/v3.hpp"
#include "store/ledger.hpp"
