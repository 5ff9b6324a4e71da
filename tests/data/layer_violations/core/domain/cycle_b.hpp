// Planted for tests/cli/layers_test.sh: the other half of an include cycle.
#pragma once

#include "domain/cycle_a.hpp"
