// TorchModel's method registry, compiled once for every tool (they are built with
// SALIENT_EXTERN_TORCH_REGISTRY; see attribution/torch_registry.hpp).
#include "salient/attribution/torch_registry.hpp"

template const std::vector<salient::MethodEntry>& salient::methods<salient::TorchModel>();
