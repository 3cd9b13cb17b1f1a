// The command-line option parser's fuzz corpus, replayed (fuzz_replay.hpp) against the tools'
// library (common/, with the registry compiled once in it); not under the sanitizers, which
// that library is built without.
#define SALIENT_FUZZ_ENTRY fuzz_options
#include "fuzz_options.cpp"
#undef SALIENT_FUZZ_ENTRY

#include "fuzz_replay.hpp"

int main() { return salient::fuzz::replay({salient::fuzz::Target{"options", fuzz_options}}); }
