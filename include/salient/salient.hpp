#pragma once
// Everything salient offers on LibTorch, in one include.
#include "salient/core/backend.hpp"
#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/core/random.hpp"
#include "salient/core/target.hpp"
#include "salient/core/torch_backend.hpp"

#include "salient/graph/executor.hpp"
#include "salient/graph/layers.hpp"
#include "salient/graph/masked_rules.hpp"
#include "salient/graph/program.hpp"
#include "salient/graph/rules.hpp"
#include "salient/graph/sequential.hpp"
#include "salient/graph/torchscript.hpp"

#include "salient/attribution/baselines.hpp"
#include "salient/attribution/cam.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/attribution/guided_backprop.hpp"
#include "salient/attribution/integrated_gradients.hpp"
#include "salient/attribution/noise_tunnel.hpp"
#include "salient/attribution/pami.hpp"
#include "salient/attribution/perturbation.hpp"

#include "salient/masking/masker.hpp"
#include "salient/masking/maskers.hpp"

#include "salient/analysis/certificate.hpp"
#include "salient/analysis/torch_certificate.hpp"
#include "salient/analysis/topk.hpp"

#include "salient/evaluation/curves.hpp"
#include "salient/evaluation/faithfulness.hpp"
#include "salient/evaluation/localisation.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/sanity.hpp"
#include "salient/evaluation/similarity.hpp"
#include "salient/evaluation/training.hpp"

#include "salient/guidance/attributions.hpp"
#include "salient/guidance/losses.hpp"

#include "salient/segmentation/segments.hpp"
#include "salient/segmentation/superpixels.hpp"

#include "salient/io/certificate.hpp"
#include "salient/io/heatmap.hpp"
#include "salient/io/idx.hpp"
#include "salient/io/image.hpp"
#include "salient/io/npy.hpp"
#include "salient/io/plot.hpp"
#include "salient/io/tensor_image.hpp"
