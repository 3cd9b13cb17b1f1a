// TorchModel's method and metric registries, compiled once for every tool and the Python module
// (they are built with SALIENT_EXTERN_TORCH_REGISTRY; see attribution/torch_registry.hpp).
#include "salient/attribution/torch_registry.hpp"
#include "salient/evaluation/metric_registry.hpp"

template const std::vector<salient::MethodEntry>& salient::methods<salient::TorchModel>();
template const std::vector<salient::MetricEntry>& salient::metric_entries<salient::TorchModel>();
